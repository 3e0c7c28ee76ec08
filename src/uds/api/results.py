"""Error members of mutation result unions, and the helper that produces them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry

from uds.api.context import Context
from uds.errors import BadUserInput
from uds.errors import Conflict as ConflictError
from uds.errors import NotFound as NotFoundError

T = TypeVar("T")


@strawberry.type
class ValidationError:
    message: str


@strawberry.type
class NotAllowed:
    message: str
    reasons: list[str]


@strawberry.type
class NotFound:
    message: str


@strawberry.type
class Conflict:
    message: str


async def mutate(
    ctx: Context, action: str, work: Callable[[], Awaitable[T]], resource: dict[str, object] | None = None
) -> T | ValidationError | NotAllowed | NotFound | Conflict:
    """Authorize `action`, then run `work` in a savepoint.

    A denial or a user error becomes a union member and `work`'s writes are rolled back
    to the savepoint; anything else propagates and fails the request.
    """
    decision = await ctx.decide(action, resource)
    if not decision.allow:
        return NotAllowed(message=f"not allowed: {action}", reasons=list(decision.reasons))
    session = await ctx.tx.core()
    savepoint = await session.begin_nested()
    try:
        result = await work()
        await session.flush()
    except BadUserInput as exc:
        await savepoint.rollback()
        return ValidationError(message=exc.message)
    except NotFoundError as exc:
        await savepoint.rollback()
        return NotFound(message=exc.message)
    except ConflictError as exc:
        await savepoint.rollback()
        return Conflict(message=exc.message)
    except BaseException:
        await savepoint.rollback()
        raise
    await savepoint.commit()
    return result

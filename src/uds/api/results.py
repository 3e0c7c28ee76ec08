"""Error members of mutation result unions, and the helper that produces them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry

from uds.api.context import Context, _target
from uds.errors import BadUserInput
from uds.errors import Conflict as ConflictError
from uds.errors import NotFound as NotFoundError
from uds.observability import audit

T = TypeVar("T")


@strawberry.type(description="The input was refused; the typed form of the BAD_USER_INPUT error code.")
class ValidationError:
    message: str
    code: str = strawberry.field(
        default="BAD_USER_INPUT", description="Always BAD_USER_INPUT: the same code as the error form."
    )


@strawberry.type(description="The policy said no; the typed form of the FORBIDDEN error code.")
class NotAllowed:
    message: str
    reasons: list[str]
    code: str = strawberry.field(
        default="FORBIDDEN", description="Always FORBIDDEN: the same code as the error form."
    )


@strawberry.type(description="No such thing in this tenant; the typed form of the NOT_FOUND error code.")
class NotFound:
    message: str
    code: str = strawberry.field(
        default="NOT_FOUND", description="Always NOT_FOUND: the same code as the error form."
    )


@strawberry.type(description="It clashes with what exists (a name taken, a state that forbids it).")
class Conflict:
    message: str
    code: str = strawberry.field(
        default="CONFLICT", description="Always CONFLICT."
    )


async def mutate(
    ctx: Context,
    action: str,
    work: Callable[[], Awaitable[T]],
    resource: dict[str, Any] | None = None,
    *,
    audit_in: str | None = None,
) -> T | ValidationError | NotAllowed | NotFound | Conflict:
    """Authorize `action`, then run `work` in a savepoint and audit it.

    A denial or a user error becomes a union member and `work`'s writes are rolled back
    to the savepoint; anything else propagates and fails the request. Denials and
    successful changes are written to the audit log of tenant `audit_in` (default: the
    request's tenant); pass "" for changes that leave no tenant schema to write to.
    """
    decision = await ctx.decide(action, resource)
    if not decision.allow:
        await ctx.audit_denial(action, decision, resource)
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
    slug = audit_in if audit_in is not None else (ctx.tenant.slug if ctx.tenant else "")
    if slug:
        await audit.record(
            await ctx.tx.connection(),
            slug=slug,
            actor=ctx.require_principal().subject,
            action=action,
            target=_target(resource),
        )
    return result

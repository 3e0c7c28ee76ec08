"""Cursor connections (`first`/`after`) with a hard maximum page size."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Generic, TypeVar

import strawberry

from uds.api.guard import NoPolicy
from uds.errors import BadUserInput

N = TypeVar("N")
DEFAULT_PAGE = 20


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[N]):
    cursor: str
    node: N


@strawberry.type
class Connection(Generic[N]):
    edges: list[Edge[N]]
    page_info: PageInfo

    @strawberry.field(extensions=[NoPolicy("the edges' nodes, already authorized")])
    def nodes(self) -> list[N]:
        return [edge.node for edge in self.edges]


def page_size(first: int | None, maximum: int) -> int:
    if first is None:
        return min(DEFAULT_PAGE, maximum)
    if first < 1 or first > maximum:
        raise BadUserInput(f"first must be between 1 and {maximum}")
    return first


def encode_cursor(kind: str, key: str | int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> str | None:
    """The key inside a cursor of this kind; BadUserInput if it is not one of ours."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    prefix, sep, key = raw.partition(":")
    if not sep or prefix != kind or not key or len(cursor) > 200:
        raise BadUserInput("after is not a valid cursor for this list")
    return key


def decode_int_cursor(kind: str, cursor: str | None) -> int | None:
    key = decode_cursor(kind, cursor)
    if key is None:
        return None
    if not key.isdigit():
        raise BadUserInput("after is not a valid cursor for this list")
    return int(key)


def time_id_key(at: datetime, item_id: uuid.UUID | str) -> str:
    """Cursor key for lists ordered by (timestamp, id), newest first."""
    return f"{at.isoformat()}|{item_id}"


def decode_time_id_cursor(kind: str, cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    key = decode_cursor(kind, cursor)
    if key is None:
        return None
    at, _, raw_id = key.partition("|")
    try:
        return datetime.fromisoformat(at), uuid.UUID(raw_id)
    except ValueError:
        raise BadUserInput("after is not a valid cursor for this list") from None


def connection(rows: Sequence[N], *, size: int, kind: str, key: Callable[[N], str | int]) -> Connection[N]:
    """Build a page from up to size+1 rows (the extra one only says there is a next page)."""
    page = list(rows[:size])
    edges = [Edge(cursor=encode_cursor(kind, key(node)), node=node) for node in page]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > size,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )

"""SQL expressions that write a value the way the GraphQL path's response writes it.

The normal path turns a row into Python values, graphql-core serializes them, and orjson
encodes the result. The JSON fast path (uds.api.compiler) builds the same text inside
PostgreSQL instead, so every expression here must produce, byte for byte, what that
chain produces for the same stored value:

- strings: `to_json(text)` escapes exactly the characters orjson escapes (checked for
  every ASCII character and a few others in tests/api/test_sqljson.py);
- timestamps: `datetime.isoformat()` of the UTC datetime asyncpg returns, i.e. six
  fraction digits, or none when they are all zero, then `+00:00`;
- floats: orjson writes the shortest round-trip digits in its own layout (`1.0`,
  `0.001`, `1e-7`, `1.5e+16`); PostgreSQL's float8 output (extra_float_digits = 1, set on
  the read engine) has the same digits in another layout, which `float8` re-arranges;
- URL-safe base64 without padding, for cursors (uds.api.pagination.encode_cursor).

Each function takes an SQL expression and returns an SQL expression that is NULL when its
input is NULL; callers write `null` for nullable fields and treat a NULL in a non-null
field as "take the normal path" (which reports the error exactly as it always does).
"""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier (names come from our own metadata, checked anyway)."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return f'"{name}"'


def literal(text: str) -> str:
    """An SQL string literal holding `text` (JSON keys and fixed JSON fragments)."""
    return "'" + text.replace("'", "''") + "'"


def string(expr: str) -> str:
    """A JSON string of the value's text form."""
    return f"to_json(({expr})::text)::text"


def digits_string(expr: str) -> str:
    """A JSON string of a value whose text needs no escaping (integers, uuids)."""
    return f"('\"' || ({expr})::text || '\"')"


def integer(expr: str) -> str:
    return f"(({expr})::text)"


def boolean(expr: str) -> str:
    return f"(case when ({expr}) then 'true' when not ({expr}) then 'false' end)"


def int32_ok(expr: str) -> str:
    """True where GraphQL's Int can hold the value (32 bits); the normal path errs otherwise."""
    return f"(({expr}) between -2147483648 and 2147483647)"


def isoformat(expr: str) -> str:
    """`datetime.isoformat()` of the timestamptz as the UTC datetime asyncpg returns."""
    return (
        f"(select to_char(u, 'YYYY-MM-DD\"T\"HH24:MI:SS')"
        f" || case when to_char(u, 'US') = '000000' then '' else to_char(u, '.US') end"
        f" || '+00:00' from (select ({expr}) at time zone 'UTC' as u) z where u is not null)"
    )


def timestamp(expr: str) -> str:
    """A JSON string of `isoformat`."""
    return f"('\"' || {isoformat(expr)} || '\"')"


def timestamp_ok(expr: str) -> str:
    """True where Python can hold the timestamp (years 1-9999, not +-infinity)."""
    utc = f"({expr}) at time zone 'UTC'"
    return f"(isfinite({expr}) and {utc} between '0001-01-01' and '9999-12-31 23:59:59.999999')"


def float8(expr: str) -> str:
    """The float as orjson writes it (Rust ryu layout), from PostgreSQL's shortest digits.

    PostgreSQL prints the shortest digits D that read back as the same double, either as a
    plain decimal or as d.ddde+XX. Both are taken apart into D (no leading or trailing
    zeros) and kk, the position of the decimal point (value = 0.D x 10^kk), then laid out
    as orjson does: up to 16 integer digits as `ddd.0`, a point inside the digits, up to
    four zeros after `0.`, else an exponent (`1e-7`, `1.25e+20`). Zero is `0.0` or `-0.0`.
    """
    x = f"({expr})::float8"
    layout = (
        "case when k >= 0 and kk <= 16 then d || repeat('0', k) || '.0'"
        " when kk > 0 and kk <= 16 then substr(d, 1, kk) || '.' || substr(d, kk + 1)"
        " when kk > -5 and kk <= 0 then '0.' || repeat('0', -kk) || d"
        " when length(d) = 1 then d || exponent"
        " else substr(d, 1, 1) || '.' || substr(d, 2) || exponent end"
    )
    parts = (
        "select x, t, case when position('e' in t) > 0 then replace(split_part(t, 'e', 1), '.', '')"
        " when position('.' in t) = 0 then rtrim(t, '0')"
        " when split_part(t, '.', 1) = '0' then ltrim(split_part(t, '.', 2), '0')"
        " else split_part(t, '.', 1) || split_part(t, '.', 2) end as d,"
        " case when position('e' in t) > 0 then split_part(t, 'e', 2)::int + 1"
        " when position('.' in t) = 0 then length(t)"
        " when split_part(t, '.', 1) = '0'"
        " then length(ltrim(split_part(t, '.', 2), '0')) - length(split_part(t, '.', 2))"
        " else length(split_part(t, '.', 1)) end as kk"
        f" from (select {x} as x, abs({x})::text as t) a"
    )
    return (
        "(select case when x = 0 then case when t_sign then '-0.0' else '0.0' end"
        f" else case when x < 0 then '-' else '' end || {layout} end"
        " from (select x, d, kk, kk - length(d) as k, (x::text like '-%') as t_sign,"
        " 'e' || case when kk > 1 then '+' else '' end || (kk - 1) as exponent"
        f" from ({parts}) b) c"
        " where x is not null)"
    )


def float8_ok(expr: str) -> str:
    """True where the value is finite (GraphQL's Float) and below 2^53 in size.

    From 2^53 on every double is an integer, and PostgreSQL prints such integers with all
    their exact digits (3.4694457353735792e+16) where orjson prints the shortest ones
    (3.469445735373579e+16); those rare values take the normal path.
    """
    return f"(abs(({expr})::float8) < 9007199254740992::float8)"


def base64url(expr: str) -> str:
    """URL-safe base64 of the text's UTF-8 bytes, without padding (PostgreSQL wraps at 76)."""
    return f"rtrim(translate(encode(convert_to(({expr}), 'UTF8'), 'base64'), E'+/\\n', '-_'), '=')"

"""Strings PostgreSQL cannot store are refused once per request, for every argument.

PostgreSQL's `text` and `jsonb` reject the NUL character, and a lone UTF-16 surrogate
(`"\\ud800"` in JSON) cannot be encoded as UTF-8 at all. Either would reach a resolver as
an ordinary `str` and fail deep inside the database driver as an internal error. Instead
every string a client sends is checked at the door, in two places that together see all
of them:

- `StorableStringsRule`, a validation rule, checks the string literals of the document.
  Validation results are cached per document, so this runs once per distinct document.
- `check_variables` walks the request's variables (values and object keys, nested),
  before execution; the GraphQL extension in `uds.api.admission` calls it.

Both answer BAD_USER_INPUT naming where the string was, never echoing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import GraphQLError, StringValueNode, ValidationRule

from uds.errors import BadUserInput


def unstorable(value: str) -> str | None:
    """Why PostgreSQL cannot store `value`, or None if it can."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000)"
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not valid Unicode text"
    return None


def check_variables(variables: Mapping[str, Any] | None) -> None:
    """Raise BadUserInput for the first unstorable string anywhere in `variables`."""
    if variables:
        _walk(variables, "$")


def _walk(value: Any, where: str) -> None:
    if isinstance(value, str):
        reason = unstorable(value)
        if reason:
            raise BadUserInput(f"variable {where} {reason}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and unstorable(key):
                raise BadUserInput(f"a key in variable {where} {unstorable(key)}")
            _walk(item, f"{where}.{key}" if where != "$" else f"${key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, f"{where}[{index}]")


class StorableStringsRule(ValidationRule):
    """Refuses string literals in the document that PostgreSQL cannot store."""

    def enter_string_value(self, node: StringValueNode, *_args: Any) -> None:
        reason = unstorable(node.value)
        if reason:
            self.report_error(
                GraphQLError(f"a string argument {reason}", node, extensions={"code": BadUserInput.code})
            )

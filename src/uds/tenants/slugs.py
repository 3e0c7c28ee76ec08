"""The tenant slug rule and schema naming: the only place that knows either.

Every identifier derived from a tenant and put into SQL comes from `tenant_schema`, which
only accepts slugs that passed `SLUG_RE`, so no caller-supplied text ever reaches SQL.
"""

from __future__ import annotations

import re

from uds.errors import BadUserInput

SLUG_RE = re.compile(r"[a-z][a-z0-9-]{2,39}")
SCHEMA_PREFIX = "t_"
# The shared schema holding tenants, memberships and other platform tables.
CORE_SCHEMA = "uds"


def is_valid_slug(value: str) -> bool:
    return SLUG_RE.fullmatch(value) is not None


def check_slug(value: str) -> str:
    """Return `value` if it is a valid slug, else raise BadUserInput (without echoing it)."""
    if not isinstance(value, str) or not is_valid_slug(value):
        raise BadUserInput(
            "tenant slug must be 3-40 characters: a lowercase letter, then lowercase letters, digits or '-'"
        )
    return value


def tenant_schema(slug: str) -> str:
    """The PostgreSQL schema holding the tenant's tables (`t_<slug with _>`)."""
    return SCHEMA_PREFIX + check_slug(slug).replace("-", "_")

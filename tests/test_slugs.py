from __future__ import annotations

import pytest

from uds.errors import BadUserInput
from uds.tenants.slugs import check_slug, is_valid_slug, tenant_schema


@pytest.mark.parametrize("slug", ["abc", "acme-corp", "a1-2", "a" * 40])
def test_valid_slugs(slug: str) -> None:
    assert is_valid_slug(slug)


@pytest.mark.parametrize(
    "slug",
    [
        "",
        "ab",
        "a" * 41,
        "1abc",
        "-abc",
        "Abc",
        "ab_c",
        "../x",
        "t1; drop schema",
        "ab c",
        "tenánt",
        "abc\n",
        "abc\x00",
        "ab'c",
        'ab"c',
    ],
)
def test_invalid_slugs(slug: str) -> None:
    assert not is_valid_slug(slug)
    with pytest.raises(BadUserInput) as info:
        tenant_schema(slug)
    assert slug not in info.value.message or slug == ""


def test_schema_name() -> None:
    assert tenant_schema("acme-corp") == "t_acme_corp"
    assert check_slug("acme") == "acme"

from __future__ import annotations

import pytest

from uds.errors import ConfigError
from uds.settings import Settings


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.database_url is None and s.redis_url is None and s.mode == "dev"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"UDS_MODE": "staging"}, "UDS_MODE"),
        ({"UDS_DATABASE_URL": "mysql://x"}, "UDS_DATABASE_URL"),
        ({"UDS_REDIS_URL": "http://x"}, "UDS_REDIS_URL"),
        ({"UDS_DB_POOL_SIZE": "ten"}, "UDS_DB_POOL_SIZE"),
        ({"UDS_JWT_ISSUERS": "[not json"}, "UDS_JWT_ISSUERS"),
        ({"UDS_JWT_ISSUERS": "no-equals-sign"}, "UDS_JWT_ISSUERS"),
        (
            {"UDS_JWT_ISSUERS": '[{"issuer": "a", "jwks_url": "https://a/j", "algorithms": ["HS256"]}]'},
            "HS256",
        ),
    ],
)
def test_bad_values_fail_loudly(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert needle in info.value.message


def test_issuers_both_forms() -> None:
    short = Settings.from_env({"UDS_JWT_ISSUERS": "https://idp=https://idp/jwks"})
    assert (
        short.jwt_issuers[0].issuer == "https://idp" and short.jwt_issuers[0].jwks_url == "https://idp/jwks"
    )
    full = Settings.from_env(
        {
            "UDS_JWT_ISSUERS": '[{"issuer": "i", "jwks_url": "http://x/j", "audience": "a", "roles_claim": "r"}]'
        }
    )
    assert full.jwt_issuers[0].audience == "a" and full.jwt_issuers[0].roles_claim == "r"

"""The network guard: prod refuses private, loopback and link-local hosts unless
allow-listed; dev allows them."""

from __future__ import annotations

import pytest

from uds.datasources.errors import SourceRefused
from uds.datasources.guard import NetworkGuard
from uds.errors import ConfigError
from uds.settings import Settings

PRIVATE = [
    "localhost",
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "10.1.2.3",
    "172.16.0.5",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "fe80::1",
    "fd00::1",
    "::ffff:127.0.0.1",
    "0.0.0.0",
    "100.64.0.1",  # carrier-grade NAT
    "/var/run/postgresql",
]


@pytest.mark.parametrize("host", PRIVATE)
async def test_prod_refuses_private_hosts(host: str) -> None:
    guard = NetworkGuard.from_settings(Settings(mode="prod"))
    with pytest.raises(SourceRefused) as info:
        await guard.vet(host, 5432)
    assert "UDS_ALLOWED_SOURCE_HOSTS" in info.value.message or "unix sockets" in info.value.message


@pytest.mark.parametrize("host", PRIVATE)
async def test_dev_allows_them(host: str) -> None:
    assert await NetworkGuard.from_settings(Settings(mode="dev")).vet(host, 5432) == host


async def test_prod_allows_public_addresses_and_connects_to_the_checked_one() -> None:
    guard = NetworkGuard.from_settings(Settings(mode="prod"))
    assert await guard.vet("8.8.8.8", 5432) == "8.8.8.8"
    assert await guard.vet("2001:4860:4860::8888", 5432) == "2001:4860:4860::8888"


async def test_the_allow_list_takes_names_addresses_and_networks() -> None:
    settings = Settings(
        mode="prod", allowed_source_hosts=("localhost", "10.0.0.0/8", "192.168.1.7", "/tmp/pg")
    )
    guard = NetworkGuard.from_settings(settings)
    assert await guard.vet("localhost", 5432) == "localhost"
    assert await guard.vet("10.20.30.40", 5432) == "10.20.30.40"
    assert await guard.vet("192.168.1.7", 5432) == "192.168.1.7"
    assert await guard.vet("/tmp/pg", 5432) == "/tmp/pg"
    with pytest.raises(SourceRefused):
        await guard.vet("192.168.1.8", 5432)
    with pytest.raises(SourceRefused):
        await guard.vet("127.0.0.1", 5432)  # "localhost" allows the name, not the address


def test_a_malformed_allow_list_fails_at_start_up() -> None:
    with pytest.raises(ConfigError, match="UDS_ALLOWED_SOURCE_HOSTS"):
        Settings.from_env({"UDS_ALLOWED_SOURCE_HOSTS": "10.0.0.0/33"})

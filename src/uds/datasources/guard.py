"""The network guard: in prod mode a data source may not point into UDS's own network.

A tenant's data source is a host name that UDS will connect to from inside its own
network, so without a guard anyone allowed to register a source could probe or read
internal services (the metadata endpoint at 169.254.169.254, UDS's own database on
localhost, a neighbour on 10.0.0.0/8). In prod mode every address a host resolves to must
be globally routable, unless the host or the address is allow-listed
(`UDS_ALLOWED_SOURCE_HOSTS`: host names, IP addresses or CIDR networks). Unix socket
paths count as local. Dev mode allows everything.

The check runs when a source is registered and again before every connection (DNS can
change in between). The connection then goes to the address that was checked, so a DNS
answer that changes between the check and the connect (rebinding) cannot slip past it;
the exception is sslmode=verify-full, which needs the host name for the certificate check
and where a rebound name would fail that check instead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from uds.datasources.errors import SourceRefused, SourceUnreachable
from uds.errors import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
RESOLVE_TIMEOUT = 5.0


def parse_allow_list(entries: Iterable[str]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """Split allow-list entries into host names and networks; ConfigError on a bad entry."""
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        if entry.startswith("/"):
            names.add(entry)
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        if "/" in entry or any(c.isspace() for c in entry):
            raise ConfigError(f"UDS_ALLOWED_SOURCE_HOSTS: {entry!r} is neither a host name nor a network")
        names.add(entry.lower().rstrip("."))
    return frozenset(names), tuple(networks)


def is_public(address: IPAddress) -> bool:
    """True for globally routable unicast addresses (what prod mode lets sources use)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@dataclass(frozen=True, slots=True)
class NetworkGuard:
    """Decides whether UDS may connect to a host, and to which address."""

    enforce: bool
    allowed_names: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: object) -> NetworkGuard:
        mode = getattr(settings, "mode", "dev")
        names, networks = parse_allow_list(getattr(settings, "allowed_source_hosts", ()))
        return cls(enforce=mode == "prod", allowed_names=names, allowed_networks=networks)

    async def vet(self, host: str, port: int) -> str:
        """The address to connect to for `host`; SourceRefused if the guard forbids it."""
        if not self.enforce:
            return host
        if host.startswith("/"):
            if host in self.allowed_names:
                return host
            raise SourceRefused(f"{host}: unix sockets are local; not allowed in prod mode")
        if host.lower().rstrip(".") in self.allowed_names:
            return host
        addresses = await resolve(host, port)
        for address in addresses:
            if is_public(address) or any(address in net for net in self.allowed_networks):
                continue
            raise SourceRefused(
                f"{host} resolves to {address}, a private, loopback or link-local address; "
                "allow-list it in UDS_ALLOWED_SOURCE_HOSTS to use it"
            )
        return str(addresses[0])


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (a literal IP resolves to itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=RESOLVE_TIMEOUT
        )
    except (OSError, TimeoutError) as exc:
        raise SourceUnreachable(f"cannot resolve host {host}: {exc}") from None
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise SourceUnreachable(f"cannot resolve host {host}: no addresses")
    return found

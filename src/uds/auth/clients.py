"""Service clients: OAuth2 client-credentials identities bound to one tenant and role.

The secret is 256 random bits, shown once at creation and stored only as a salted
SHA-256 (a slow hash buys nothing for a secret that cannot be guessed). A client acts as
subject `service:<client_id>`, a member of its tenant with the client's role; revoking
removes that membership, so its unexpired tokens stop working at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from uds.db import CoreBase
from uds.errors import BadUserInput, NotFound
from uds.tenants import service as tenants
from uds.tenants.models import ROLES, Membership, PlatformAudit, Tenant

CLIENT_ID_PREFIX = "uds_sc_"
SUBJECT_PREFIX = "service:"


class ServiceClient(CoreBase):
    __tablename__ = "service_clients"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("uds.tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def subject(self) -> str:
        return SUBJECT_PREFIX + self.client_id


@dataclass(frozen=True, slots=True)
class ActiveClient:
    """What the token endpoint needs to know about a client that may get a token."""

    client_id: str
    secret_hash: str
    tenant_slug: str
    role: str

    @property
    def subject(self) -> str:
        return SUBJECT_PREFIX + self.client_id


def hash_secret(secret: str, *, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(16)
    digest = hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()
    return f"sha256${salt}${digest}"


def secret_matches(secret: str, stored: str) -> bool:
    try:
        scheme, salt, _ = stored.split("$", 2)
    except ValueError:
        return False
    return scheme == "sha256" and hmac.compare_digest(hash_secret(secret, salt=salt), stored)


async def create_client(
    session: AsyncSession, *, slug: str, name: str, role: str, actor: str
) -> tuple[ServiceClient, str]:
    """Create a client and its membership; returns the row and the secret (never stored)."""
    if role not in ROLES:
        raise BadUserInput(f"role must be one of {', '.join(ROLES)}")
    name = name.strip()
    if not name or len(name) > 200:
        raise BadUserInput("name must be 1-200 characters")
    tenant = await tenants.get_tenant(session, slug=slug)
    secret = secrets.token_urlsafe(32)
    client = ServiceClient(
        tenant_id=tenant.id,
        name=name,
        client_id=CLIENT_ID_PREFIX + secrets.token_hex(12),
        secret_hash=hash_secret(secret),
        role=role,
        created_by=actor,
    )
    session.add(client)
    session.add(Membership(tenant_id=tenant.id, subject=client.subject, role=role))
    session.add(
        PlatformAudit(
            actor=actor,
            action="serviceclient.create",
            target=slug,
            detail={"client_id": client.client_id, "role": role},
        )
    )
    await session.flush()
    return client, secret


async def revoke_client(session: AsyncSession, *, slug: str, client_id: str, actor: str) -> ServiceClient:
    tenant = await tenants.get_tenant(session, slug=slug)
    client = await session.scalar(
        select(ServiceClient).where(
            ServiceClient.tenant_id == tenant.id, ServiceClient.client_id == client_id
        )
    )
    if client is None:
        raise NotFound(f"no service client {client_id!r} in tenant {slug!r}")
    if client.revoked_at is None:
        client.revoked_at = func.now()
        await session.execute(
            delete(Membership).where(Membership.tenant_id == tenant.id, Membership.subject == client.subject)
        )
        session.add(
            PlatformAudit(
                actor=actor, action="serviceclient.revoke", target=slug, detail={"client_id": client_id}
            )
        )
        await session.flush()
        await session.refresh(client)
    return client


async def list_clients(session: AsyncSession, *, tenant_id: Any) -> list[ServiceClient]:
    rows = await session.scalars(
        select(ServiceClient).where(ServiceClient.tenant_id == tenant_id).order_by(ServiceClient.created_at)
    )
    return list(rows.all())


async def find_active(session: AsyncSession, *, client_id: str) -> ActiveClient | None:
    """The client if it exists, is not revoked and its tenant is active or suspended."""
    if not client_id.startswith(CLIENT_ID_PREFIX) or len(client_id) > 64:
        return None
    row = (
        await session.execute(
            select(ServiceClient.client_id, ServiceClient.secret_hash, Tenant.slug, ServiceClient.role)
            .join(Tenant, Tenant.id == ServiceClient.tenant_id)
            .where(ServiceClient.client_id == client_id, ServiceClient.revoked_at.is_(None))
        )
    ).first()
    return ActiveClient(*row) if row else None

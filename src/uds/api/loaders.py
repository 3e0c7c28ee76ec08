"""Dataloaders, made per request from the request's own transaction scope."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from uds.db import TransactionScope
from uds.tenants.models import Membership, Tenant


class Loaders:
    """Each loader is made when first used: most requests use none."""

    def __init__(self, tx: TransactionScope) -> None:
        self._tx = tx
        self._membership_loader: DataLoader[str, list[tuple[Membership, Tenant]]] | None = None

    @property
    def memberships(self) -> DataLoader[str, list[tuple[Membership, Tenant]]]:
        if self._membership_loader is None:
            self._membership_loader = DataLoader(self._memberships)
        return self._membership_loader

    async def _memberships(self, subjects: Sequence[str]) -> list[list[tuple[Membership, Tenant]]]:
        session = await self._tx.core()
        rows = await session.execute(
            select(Membership, Tenant)
            .join(Tenant, Tenant.id == Membership.tenant_id)
            .where(Membership.subject.in_(subjects))
            .order_by(Tenant.slug)
        )
        found: dict[str, list[tuple[Membership, Tenant]]] = defaultdict(list)
        for member, tenant in rows:
            found[member.subject].append((member, tenant))
        return [found[s] for s in subjects]

"""Dataloaders, made per request from the request's own transaction scope."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from uds.db import TransactionScope
from uds.tenants.models import Membership, Tenant


class Loaders:
    def __init__(self, tx: TransactionScope) -> None:
        self._tx = tx
        self.memberships = DataLoader(self._memberships)

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

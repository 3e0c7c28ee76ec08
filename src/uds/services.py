"""The long-lived resources one process shares: built at start-up, closed at shutdown."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from uds.auth.keys import SigningKey
from uds.auth.verify import TokenVerifier
from uds.db import make_engine
from uds.policies import PolicyEngine, RoleTableEngine
from uds.settings import Settings
from uds.tenants.registry import TenantRegistry


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    redis: Redis
    registry: TenantRegistry
    signing_key: SigningKey
    verifier: TokenVerifier
    policy: PolicyEngine

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        """Connect to the configured servers; `settings` must name them."""
        if not settings.database_url or not settings.redis_url:
            raise RuntimeError("database and redis URLs must be set before Services.start")
        engine = make_engine(settings)
        redis = Redis.from_url(settings.redis_url)
        registry = TenantRegistry(engine, redis, ttl=settings.tenant_cache_ttl_seconds)
        signing_key = SigningKey.load_or_create(settings.data_dir)
        verifier = TokenVerifier(
            own_key=signing_key,
            own_issuer=settings.own_issuer,
            audience=settings.audience,
            issuers=settings.jwt_issuers,
            max_token_bytes=settings.max_token_bytes,
        )
        services = cls(settings, engine, redis, registry, signing_key, verifier, RoleTableEngine())
        await registry.start()
        return services

    async def close(self) -> None:
        await self.registry.stop()
        await self.verifier.aclose()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        await self.engine.dispose()

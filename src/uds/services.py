"""The long-lived resources one process shares: built at start-up, closed at shutdown."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from uds.auth.keys import SigningKey
from uds.auth.verify import TokenVerifier
from uds.datasources.credentials import CredentialCipher, load_cipher
from uds.db import make_engine, make_read_engine, make_read_pool
from uds.jobs.hub import EventHub
from uds.jobs.queue import JobQueue
from uds.jobs.replay import EventReads
from uds.observability.relay import EventRelay
from uds.policies import PolicyEngine, open_engine
from uds.ratelimit import RateLimiter
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
    # Read-only, autocommit connections for GraphQL queries (uds.db.make_read_engine).
    read_engine: AsyncEngine = field(init=False)
    # The same kind of connections without SQLAlchemy, for operation plans (uds.db.make_read_pool);
    # None with UDS_FAST_PATHS=off.
    read_pool: asyncpg.Pool | None = field(init=False)
    # Jobs (uds.jobs): arq enqueue and tenant slots; job events published and fanned out.
    queue: JobQueue = field(init=False)
    events: EventHub = field(init=False)
    # Replays of stored job events, one query for the subscribers asking at the same time.
    event_reads: EventReads = field(init=False)
    # Data source passwords at rest (uds.datasources.credentials); from UDS_SECRET_KEYS.
    credentials: CredentialCipher = field(init=False)
    # Rate limits (uds.ratelimit): its own Redis client, with short timeouts, failing open.
    limiter: RateLimiter = field(init=False)
    # Domain events (uds.observability.relay): outbox -> Redis stream; started by the API
    # lifespan and by workers, not by one-shot CLI commands.
    relay: EventRelay = field(init=False)

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        """Connect to the configured servers; `settings` must name them."""
        if not settings.database_url or not settings.redis_url:
            raise RuntimeError("database and redis URLs must be set before Services.start")
        credentials = load_cipher(settings)  # prod without UDS_SECRET_KEYS stops here
        engine = make_engine(settings)
        redis = Redis.from_url(settings.redis_url)
        registry = TenantRegistry(
            engine, redis, ttl=settings.tenant_cache_ttl_seconds, prefix=settings.redis_prefix
        )
        signing_key = SigningKey.load_or_create(settings.data_dir)
        verifier = TokenVerifier(
            own_key=signing_key,
            own_issuer=settings.own_issuer,
            audience=settings.audience,
            issuers=settings.jwt_issuers,
            max_token_bytes=settings.max_token_bytes,
        )
        policy = await open_engine(settings)
        services = cls(settings, engine, redis, registry, signing_key, verifier, policy)
        services.read_engine = make_read_engine(settings)
        services.read_pool = await make_read_pool(settings) if settings.fast_paths else None
        services.queue = JobQueue(settings)
        services.events = EventHub(redis)
        services.event_reads = EventReads(services.read_engine)
        services.credentials = credentials
        services.limiter = RateLimiter(
            settings.redis_url,
            prefix=settings.redis_prefix,
            timeout=settings.rate_limit_timeout_seconds,
            enabled=settings.rate_limits,
        )
        services.relay = EventRelay(engine, settings)
        await registry.start()
        return services

    async def close(self) -> None:
        from uds.dashboards.data import close_pools  # widget data connections to sources

        await close_pools(self)
        from uds.dashboards.render import close_pools as close_render_pools  # picture processes

        await close_render_pools()
        await self.relay.stop()
        await self.registry.stop()
        await self.events.close()
        await self.queue.close()
        await self.policy.aclose()
        await self.limiter.aclose()
        await self.verifier.aclose()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        await self.read_engine.dispose()
        if self.read_pool is not None:
            await self.read_pool.close()
        await self.engine.dispose()

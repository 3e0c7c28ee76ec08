"""Pick and start the policy backend the settings name: OPA if UDS_POLICY_URL is set."""

from __future__ import annotations

from uds.errors import ConfigError
from uds.policies.catalogue import REGO_DIR
from uds.policies.embedded import EmbeddedRegoEngine
from uds.policies.engine import PolicyEngine
from uds.policies.opa import OpaServerEngine
from uds.settings import Settings


async def open_engine(settings: Settings) -> PolicyEngine:
    """The started engine; the caller closes it with `aclose()`."""
    if settings.policy_url:
        return await OpaServerEngine(
            settings.policy_url, timeout=settings.policy_timeout_seconds, retries=settings.policy_retries
        ).start()
    if settings.policy_dir is not None and not settings.policy_dir.is_dir():
        raise ConfigError(f"UDS_POLICY_DIR {settings.policy_dir} is not a directory")
    return EmbeddedRegoEngine(
        settings.policy_dir or REGO_DIR, cache_size=settings.policy_cache_size, reload=settings.dev
    )

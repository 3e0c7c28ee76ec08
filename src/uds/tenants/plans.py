"""Plans: the features and limits a tenant gets, and per-tenant overrides.

The effective view (plan defaults, then the tenant's overrides from `uds.tenants.limits`)
is what the policy engine sees as `input.tenant.features` / `input.tenant.limits`, and
what callers enforce (e.g. a discovery run's row budget).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from uds.errors import BadUserInput

FEATURES = ("discovery", "dashboards", "pii_detection", "grafana_export", "mcp", "service_clients")


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    features: frozenset[str]
    limits: Mapping[str, int]


# Limit keys, their meaning and bounds (inclusive). The caller that owns a limit enforces it.
LIMITS: Mapping[str, tuple[str, int, int]] = MappingProxyType(
    {
        "max_data_sources": ("data sources a tenant may register", 0, 10_000),
        "max_concurrent_jobs": ("jobs of the tenant running at once", 1, 1_000),
        "discovery_row_budget": ("rows one discovery run may read", 1_000, 10_000_000_000),
        "max_dashboards": ("dashboards a tenant may keep", 0, 100_000),
        "max_members": ("members of the tenant", 1, 100_000),
        # Rate limits (docs/limits.md), in request units: a read costs 1, a mutation 5, a
        # job start 20. A burst must hold at least one job start.
        "requests_per_second": ("request units per second, the whole tenant", 1, 1_000_000),
        "request_burst": ("request units the tenant may spend at once", 20, 10_000_000),
        "member_requests_per_second": ("request units per second, one member or client", 1, 1_000_000),
        "member_request_burst": ("request units one member may spend at once", 20, 10_000_000),
        "max_ws_connections_per_member": ("WebSocket connections one member keeps open", 1, 10_000),
    }
)

PLANS: Mapping[str, Plan] = MappingProxyType(
    {
        "free": Plan(
            "free",
            frozenset({"discovery", "dashboards"}),
            {
                "max_data_sources": 2,
                "max_concurrent_jobs": 2,
                "discovery_row_budget": 1_000_000,
                "max_dashboards": 10,
                "max_members": 5,
                "requests_per_second": 50,
                "request_burst": 100,
                "member_requests_per_second": 20,
                "member_request_burst": 60,
                "max_ws_connections_per_member": 5,
            },
        ),
        "pro": Plan(
            "pro",
            frozenset({"discovery", "dashboards", "pii_detection", "grafana_export", "mcp"}),
            {
                "max_data_sources": 20,
                "max_concurrent_jobs": 5,
                "discovery_row_budget": 50_000_000,
                "max_dashboards": 200,
                "max_members": 100,
                "requests_per_second": 200,
                "request_burst": 400,
                "member_requests_per_second": 50,
                "member_request_burst": 150,
                "max_ws_connections_per_member": 20,
            },
        ),
        "enterprise": Plan(
            "enterprise",
            frozenset(FEATURES),
            {
                "max_data_sources": 500,
                "max_concurrent_jobs": 20,
                "discovery_row_budget": 1_000_000_000,
                "max_dashboards": 10_000,
                "max_members": 10_000,
                "requests_per_second": 2_000,
                "request_burst": 4_000,
                "member_requests_per_second": 200,
                "member_request_burst": 600,
                "max_ws_connections_per_member": 100,
            },
        ),
    }
)


def check_plan(name: str) -> str:
    if name not in PLANS:
        raise BadUserInput(f"plan must be one of {', '.join(PLANS)}")
    return name


def check_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Validate per-tenant overrides: known limit keys with in-range integers, or `features`."""
    clean: dict[str, Any] = {}
    for key, value in overrides.items():
        if key == "features":
            if not isinstance(value, list) or not all(isinstance(f, str) and f in FEATURES for f in value):
                raise BadUserInput(f"features must be a list drawn from {', '.join(FEATURES)}")
            clean[key] = sorted(set(value))
            continue
        if key not in LIMITS:
            raise BadUserInput(f"unknown limit {key!r}; known: {', '.join(LIMITS)}")
        _, low, high = LIMITS[key]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise BadUserInput(f"{key} must be an integer from {low} to {high}")
        clean[key] = value
    return clean


def effective(plan: str, overrides: Mapping[str, Any]) -> tuple[frozenset[str], dict[str, int]]:
    """Features and limits of a tenant: the plan's, then the tenant's overrides."""
    base = PLANS.get(plan, PLANS["free"])
    features = frozenset(overrides["features"]) if "features" in overrides else base.features
    limits = dict(base.limits)
    limits.update({k: v for k, v in overrides.items() if k in LIMITS})
    return features, limits

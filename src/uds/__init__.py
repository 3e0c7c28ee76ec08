"""UDS: a multi-tenant GraphQL control plane for discovering databases and building dashboards."""

__version__ = "0.1.0"

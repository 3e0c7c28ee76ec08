"""Tenants: slug rule and schema naming, registry, provisioning, request routing."""

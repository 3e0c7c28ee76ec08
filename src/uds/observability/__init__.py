"""Audit log, structured logging and metrics."""

"""Logging (structlog), Prometheus metrics, and the secret redaction applied to both."""

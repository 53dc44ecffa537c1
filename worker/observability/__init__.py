"""Logging and (later) metrics set-up, with secret redaction applied everywhere."""

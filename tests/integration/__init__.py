"""End-to-end tests: the unmodified official OSS SDKs against a real ``picscore serve``."""

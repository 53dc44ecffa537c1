"""Client side of the OSS API: building the SDK's AsyncClient, credentials, error classification."""

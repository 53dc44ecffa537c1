"""Client side of the OSS API: the SDK's AsyncClient as picscore builds it, credentials (RRSA),
error classification, the one retry policy, ``oss://`` URLs, and the ``image/score`` contract
that the embedded server shares."""

"""The soak's fixed settings: credentials, key counts, the server's deadlines, verdict bounds."""

from __future__ import annotations

KEY_ID, SECRET = "LTAIsoak00000000", "soak-secret-not-real"
REGION = "cn-hangzhou"
BUCKET = "soak"
DEFAULT_FAULTS = "latency=5-50ms,503=0.05,429=0.02,reset=0.01,slow-body=512KiB/s,scope=all,seed=7"
#: Key names the SDK mix cycles over (400 photos + 100 non-image objects = 500 per server).
IMAGE_KEYS, BLOB_KEYS = 400, 100
#: Verdict bounds: RSS may grow by the larger of these; fds at rest by this many.
RSS_TOLERANCE_FRACTION, RSS_TOLERANCE_MB, FD_TOLERANCE = 0.10, 20.0, 10
#: Seconds after the traffic stops before the "at rest" sample: clients' sockets close, the server sees EOF.
SETTLE_S = 5.0
#: The server's deadlines the hostile traffic leans on (worker/server/app.py ServerConfig).
HEADER_TIMEOUT_S, KEEPALIVE_TIMEOUT_S = 20.0, 60.0
IDLE_HOLD_S, KEEPALIVE_HOLD_S = 30.0, 75.0
#: One SDK operation may take this long before the client gives up on it.
OP_TIMEOUT_S = 90.0

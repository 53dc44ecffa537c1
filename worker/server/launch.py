"""Start ``picscore serve`` as a child process and wait until it listens.

Used by ``picscore demo``, the benchmarks and the integration tests: a real server process,
on a free port chosen by the kernel (``--port 0``), whose address is read from the line it
prints when ready — no sleeping, no port races.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServerProcess", "start_command", "start_server"]

_READY = re.compile(r"listening on (http://\S+)")


@dataclass
class ServerProcess:
    """A running server: its base URL, port and process. ``stop()`` it when done."""

    url: str
    port: int
    process: subprocess.Popen[str]
    output: list[str]
    #: The thread copying the child's output into ``output``; ends at the pipe's EOF.
    pump: threading.Thread | None = None

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # Close our end of the pipe once the pump has read it to the end (closing it under a
        # reading thread would break that thread); a grandchild still holding it keeps it open.
        if self.pump is not None:
            self.pump.join(2.0)
        if self.process.stdout is not None and (self.pump is None or not self.pump.is_alive()):
            self.process.stdout.close()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(root: Path, credentials: Mapping[str, str], *, args: Sequence[str] = (),
                 timeout: float = 60.0, env: Mapping[str, str] | None = None) -> ServerProcess:
    """Start ``picscore serve --root ROOT --port 0`` with ``credentials`` as its accepted keys.

    The keys reach the child through ``OSS_ACCESS_KEY_ID``/``OSS_ACCESS_KEY_SECRET`` (one
    pair) or a ``--credentials`` file written by the caller and passed in ``args``.
    """
    command = [sys.executable, "-m", "worker.cli", "serve", "--root", str(root), "--port", "0", *args]
    return start_command(command, credentials, timeout=timeout, env=env)


def start_command(command: Sequence[str], credentials: Mapping[str, str], *, timeout: float = 60.0,
                  env: Mapping[str, str] | None = None) -> ServerProcess:
    """Start ``command``, a server that prints ``listening on http://HOST:PORT`` once it listens.

    :func:`start_server` runs ``picscore serve`` with it; tests also run servers configured in
    ways the command line does not offer (a short header timeout), or under a wrapper (a lower
    ``ulimit``), and wait for them the same way. The first pair of ``credentials``, if any,
    reaches the child as ``OSS_ACCESS_KEY_ID``/``OSS_ACCESS_KEY_SECRET``.
    """
    child_env = dict(os.environ if env is None else env)
    if credentials:
        (key_id, secret), = list(credentials.items())[:1]
        child_env["OSS_ACCESS_KEY_ID"] = key_id
        child_env["OSS_ACCESS_KEY_SECRET"] = secret
    process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=child_env, bufsize=1)
    output: list[str] = []
    found: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = _READY.search(line)
            if match and not found:
                found.append(match[1])
                ready.set()
        ready.set()

    pump_thread = threading.Thread(target=pump, daemon=True)
    pump_thread.start()
    if not ready.wait(timeout) or not found:
        process.kill()
        process.wait()
        raise RuntimeError("picscore serve did not start:\n" + "".join(output[-30:]))
    url = found[0]
    return ServerProcess(url=url, port=int(url.rsplit(":", 1)[1]), process=process, output=output,
                         pump=pump_thread)

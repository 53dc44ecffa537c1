"""``picscore demo`` (``make run``): the first thing a new user runs.

Builds the bundled demo bucket, starts the embedded server on it, and audits the bucket with
``picscore run`` exactly as one would audit a bucket on Alibaba Cloud OSS — signed
ListObjectsV2, then a signed GET with ``x-oss-process=image/score`` per object — into a
Parquet file. Prints the run's summary, the worst images, and where the results are. Then it
does what people do with scores: ``picscore covers`` chooses each photo's cover among its
original and damaged variants, ``picscore filter --dry-run`` shows what quarantining the
worst images would move, touching nothing, and ``picscore report`` writes the audit as one HTML
page (its image links are left out: the demo server and its key pair are gone once it ends).
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from ..results.formats import read_rows
from ..server.launch import start_server
from .build import build_demo_bucket

__all__ = ["run_demo"]

BUCKET = "demo"


def _demo_credentials() -> dict[str, str]:
    """The exported OSS pair when there is one (so other clients can use it too), else a fresh one."""
    key_id, secret = os.environ.get("OSS_ACCESS_KEY_ID"), os.environ.get("OSS_ACCESS_KEY_SECRET")
    if key_id and secret:
        return {key_id: secret}
    return {"LTAIdemo" + secrets.token_hex(6): secrets.token_urlsafe(24)}


def run_demo(root: Path, *, output: Path, port: int = 0, out: TextIO) -> int:
    root.mkdir(parents=True, exist_ok=True)
    build_demo_bucket(root, BUCKET)
    output.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = output.with_name(output.name + ".checkpoint.sqlite")
    for stale in (output, checkpoint):  # the demo starts from scratch every time
        stale.unlink(missing_ok=True)
    credentials = _demo_credentials()
    (key_id, secret), = credentials.items()
    env = {**os.environ, "OSS_ACCESS_KEY_ID": key_id, "OSS_ACCESS_KEY_SECRET": secret}
    extra = ["--port", str(port)] if port else []
    with start_server(root, credentials, args=extra) as server:
        print(f"Serving {root.resolve()} at {server.url}; auditing oss://{BUCKET}/ with picscore run:\n",
              file=out, flush=True)
        command = [sys.executable, "-m", "worker.cli", "run", "--endpoint", server.url, "--region", "cn-hangzhou",
                   "--bucket", BUCKET, "--output", str(output), "--checkpoint", str(checkpoint),
                   "--concurrency", "8", "--progress", "never", "--log-level", "warning"]
        code = subprocess.run(command, env=env, stdout=out, stderr=sys.stderr, check=False).returncode
        if code != 0 or not output.exists():
            print(f"\npicscore run exited with {code}", file=out)
            return code or 1
        code = _act_on_scores(output, server.url, env, out)
        if code != 0:
            return code
    rows = sorted((r for r in read_rows(output) if r["score"] is not None), key=lambda r: r["score"])
    print("\nWorst five and best five images:", file=out)
    for row in rows[:5] + rows[-5:]:
        dims = row["dimensions"] or {}
        weakest = min(dims, key=dims.get) if dims else "-"
        print(f"  {row['score']:.3f}  {row['key']:<45} weakest: {weakest} {dims.get(weakest, '')}", file=out)
    python, picscore = _commands()
    print(f"\nResults (one row per object, Parquet): {output.resolve()}\n"
          f"The report (open it in a browser): {output.with_name('demo-report.html').resolve()}\n"
          f"Read them with:\n"
          f"  {python} -c \"import pyarrow.parquet as pq; "
          f"print(pq.read_table('{output.resolve()}').select(['key', 'status', 'score']))\"\n"
          f"The bucket is the folder {root.resolve() / BUCKET}. Serve it yourself (any key pair works; "
          f"clients sign with the same pair):\n"
          f"  export OSS_ACCESS_KEY_ID=LTAIlocal OSS_ACCESS_KEY_SECRET=local-secret\n"
          f"  {picscore} serve --root {root.resolve()} --port 9000", file=out)
    return 0


def _act_on_scores(results: Path, endpoint: str, env: dict[str, str], out: TextIO) -> int:
    """Covers of each photo (grouped by file name) and a dry-run quarantine of the worst images."""
    covers = results.with_name("demo-covers.csv")
    selection = results.with_name("demo-low-quality.csv")
    report = results.with_name("demo-report.html")
    steps = [
        ("Choosing each photo's cover among its original and damaged variants",
         ["covers", str(results), "--group-regex", r"(?P<group>[^/]+)\.jpg$", "--output", str(covers)]),
        ("What quarantining the worst fifth would do (a dry run: nothing is moved)",
         ["filter", str(results), "--worst-percent", "20", "--action", "move", "--to", "quarantine/", "--dry-run",
          "--output", str(selection), "--endpoint", endpoint, "--region", "cn-hangzhou", "--log-level", "warning"]),
        ("The audit at a glance: one HTML page, thumbnails through x-oss-process=image/resize",
         ["report", str(results), "--output", str(report), "--links", "none", "--endpoint", endpoint,
          "--region", "cn-hangzhou", "--log-level", "warning"]),
    ]
    for title, args in steps:
        visible = args[:args.index("--endpoint")] if "--endpoint" in args else args  # the server's URL is local
        shown = " ".join(shlex.quote(a) for a in ["picscore", *visible])
        print(f"\n{title}:\n  $ {shown}", file=out, flush=True)
        code = subprocess.run([sys.executable, "-m", "worker.cli", *args], env=env, stdout=out, stderr=sys.stderr,
                              check=False).returncode
        if code != 0:
            print(f"\npicscore {args[0]} exited with {code}", file=out)
            return code
    return 0


def _commands() -> tuple[str, str]:
    """This installation's Python and ``picscore``, as paths that work without activating the venv."""
    python = shlex.quote(sys.executable)
    script = Path(sys.executable).with_name("picscore")
    return python, shlex.quote(str(script)) if script.exists() else f"{python} -m worker.cli"

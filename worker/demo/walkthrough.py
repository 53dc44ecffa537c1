"""``picscore demo``: the first thing a new user runs.

Builds the bundled demo bucket, starts the embedded server on it, and scores every image
through the official ``alibabacloud-oss-v2`` SDK exactly as one would against Alibaba Cloud
OSS — a signed GET with ``x-oss-process=image/score`` — then prints the scores, worst first.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import TextIO

import alibabacloud_oss_v2 as oss

from ..server.launch import start_server
from .build import build_demo_bucket

__all__ = ["run_demo"]

BUCKET = "demo"


def _demo_credentials() -> dict[str, str]:
    """The exported OSS pair when there is one (so the same pair works for other clients), else a fresh one."""
    key_id, secret = os.environ.get("OSS_ACCESS_KEY_ID"), os.environ.get("OSS_ACCESS_KEY_SECRET")
    if key_id and secret:
        return {key_id: secret}
    return {"LTAIdemo" + secrets.token_hex(6): secrets.token_urlsafe(24)}


def _client(url: str, credentials: dict[str, str]) -> oss.Client:
    (key_id, secret), = credentials.items()
    config = oss.config.load_default()
    config.credentials_provider = oss.credentials.StaticCredentialsProvider(key_id, secret)
    config.region = "cn-hangzhou"
    config.endpoint = url
    return oss.Client(config)


def run_demo(root: Path, *, port: int = 0, out: TextIO) -> int:
    root.mkdir(parents=True, exist_ok=True)
    keys = build_demo_bucket(root, BUCKET)
    credentials = _demo_credentials()
    extra = ["--port", str(port)] if port else []
    with start_server(root, credentials, args=extra) as server:
        client = _client(server.url, credentials)
        listed = [obj.key for page in client.list_objects_v2_paginator().iter_page(
            oss.ListObjectsV2Request(bucket=BUCKET)) for obj in page.contents or []]
        rows = []
        for key in listed:
            result = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, process="image/score"))
            answer = json.loads(result.body.read())
            rows.append((answer["ImageScore"]["OverallQualityScore"], key, answer["ImageScore"]))
    rows.sort()
    print(f"Scored {len(rows)} of {len(keys)} objects in oss://{BUCKET}/ through {server.url} "
          "(alibabacloud-oss-v2, signed V4, x-oss-process=image/score):\n", file=out)
    print(f"{'score':>6}  {'key':<48} weakest dimension", file=out)
    for overall, key, image_score in rows:
        dims = {k: v for k, v in image_score.items() if k != "OverallQualityScore"}
        weakest = min(dims, key=dims.get) if dims else "-"
        print(f"{overall:6.3f}  {key:<48} {weakest} {dims.get(weakest, '')}", file=out)
    print(f"\nThe bucket is the folder {root.resolve() / BUCKET}; serve it yourself with\n"
          f"  picscore serve --root {root}", file=out)
    return 0

"""``make bench-thumbnails``: how fast ``picscore thumbnails`` chooses thumbnails, and what it costs.

A real ``picscore serve`` (2 processing workers) and the worker as a child process, on this
machine (README: 2 cores, so server and worker share them, as they would not in production).
The videos are the demo's kind (:mod:`worker.demo.videos`): each bundled photo in seven
stretches, one clean and six a person would skip, encoded with libx264 and libx265, key frames
every second. Per scorer (``oss``: scratch put + image/score + delete per frame; ``local``:
picscore's model in the worker), one run over every video, reporting:

* videos per minute and seconds per video (wall clock), and the CPU seconds the whole machine
  spent meanwhile (from /proc/stat: the worker, the server and their worker processes);
* billed calls per video (video/snapshot, image/score) and all calls per video (ranged reads,
  puts, deletes, the thumbnail's guard and write), from the rows and the summary;
* the share of videos whose chosen frame is in the clean stretch.

    python benchmarks/bench_thumbnails.py [--width 768] [--seconds 28] [--frames 12]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_worker import KEY_ID, REGION, SECRET, child_env, run_child

from worker.commands.thumbnail_rows import THUMBNAIL_SCHEMA
from worker.demo.videos import clips
from worker.results.formats import read_rows
from worker.server.launch import start_server

BUCKET = "bench-videos"


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has spent (user, nice, system, irq, softirq)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=768, help="video width, px (default 768: the photos' own)")
    parser.add_argument("--seconds", type=float, default=28.0, help="video length, s (default 28: 4 s stretches)")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--frames", type=int, default=12, help="candidates per video (default 12)")
    parser.add_argument("--concurrency", type=int, default=4)
    options = parser.parse_args()
    stretch = max(1, round(options.seconds * options.fps / 7))
    with tempfile.TemporaryDirectory(prefix="bench-thumbs-") as work:
        root = Path(work) / "root"
        (root / BUCKET / "v").mkdir(parents=True)
        started = time.perf_counter()
        made = clips(width=options.width, fps=options.fps, stretch_frames=stretch)
        for clip in made:
            (root / BUCKET / "v" / clip.name).write_bytes(clip.data)
        size_mb = sum(len(c.data) for c in made) / 1e6
        print(f"{len(made)} videos ({options.width} px, {made[0].duration_ms / 1000:.1f} s at {options.fps} fps, "
              f"H.264 and H.265, {size_mb:.1f} MB) made in {time.perf_counter() - started:.0f} s\n")
        print(f"{'scorer':<7} {'videos/min':>10} {'s/video':>8} {'CPU s/video':>12} "
              f"{'billed/video':>22} {'all calls/video':>16} {'clean chosen':>13}")
        with start_server(root, {KEY_ID: SECRET}, args=["--workers", "2"]) as server:
            for scorer in ("local", "oss"):
                output = Path(work) / f"thumbs-{scorer}.parquet"
                busy = machine_busy_s()
                argv = [sys.executable, "-m", "worker.cli", "thumbnails", "--endpoint", server.url, "--region",
                        REGION, "--bucket", BUCKET, "--output", str(output), "--scorer", scorer, "--frames",
                        str(options.frames), "--concurrency", str(options.concurrency), "--progress", "never",
                        "--log-level", "warning", "--save-to", "thumbs/{stem}.jpg"]
                result = run_child(argv, child_env(), timeout_s=3600)
                busy = machine_busy_s() - busy
                if result.code != 0:
                    sys.exit(f"thumbnails --scorer {scorer} exited {result.code}:\n{result.stderr[-3000:]}")
                rows = {row["key"]: row for row in read_rows(output, None, THUMBNAIL_SCHEMA)}
                billed = re.search(r"billed calls made: (\d+) video/snapshot, (\d+) image/score", result.stdout)
                assert billed is not None, result.stdout
                snapshots, scores = (int(billed.group(1)), int(billed.group(2)))
                chosen = {c.name: rows[f"v/{c.name}"]["chosen_ms"] for c in made}
                clean = sum(1 for c in made if c.clean_ms[0] <= (chosen[c.name] if chosen[c.name] is not None
                                                                 else -1) < c.clean_ms[1])
                calls = sum(row["calls"] for row in rows.values()) / len(made)
                print(f"{scorer:<7} {60 * len(made) / result.wall_s:>10.1f} {result.wall_s / len(made):>8.2f} "
                      f"{busy / len(made):>12.2f} "
                      f"{f'{snapshots / len(made):.0f} snap + {scores / len(made):.0f} score':>22} {calls:>16.1f} "
                      f"{f'{clean}/{len(made)}':>13}")


if __name__ == "__main__":
    main()

"""Bundled demo bucket: freely licensed Kodak photos plus generated damaged variants.

See ``LICENSE.md`` in this package for the photos' source and licence. The names below are
loaded lazily from :mod:`worker.demo.build`, so ``python -m worker.demo.build`` runs cleanly.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEMO_IMAGES", "KINDS", "build_demo_bucket", "demo_images", "read_demo_image"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from worker.demo import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The scored-image fixture that guards the shipped model against silent changes.

``model_fixture.json`` holds the SHA-256 of every model file and the overall score of each
demo photo and of its damaged variants, in each layout. A changed weight file fails ``test_model.py`` until
the fixture is regenerated on purpose::

    python -m tests.quality.model_fixture --write
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from worker.demo import DEMO_IMAGES, KINDS
from worker.demo.build import enlarged_demo_jpeg, read_demo_image
from worker.quality import score
from worker.quality.model import LAYOUTS, MODEL_DIR, MODEL_FILES

FIXTURE = Path(__file__).with_name("model_fixture.json")


def model_hashes() -> dict[str, str]:
    return {name: hashlib.sha256((MODEL_DIR / name).read_bytes()).hexdigest() for name in MODEL_FILES}


def fixture_images() -> dict[str, bytes]:
    """Each demo photo, its damaged variants for two of them, and one photo enlarged to 12 Mpx
    (29 images). The demo photos are 768x512, too small for scaled decoding: the 12 Mpx JPEG
    guards that path (DCT scale, analysis size, native crops of a large photo)."""
    from tests.quality.conftest import demo_photo

    images = {name: read_demo_image(name) for name in DEMO_IMAGES}
    for name in DEMO_IMAGES[:2]:
        img = demo_photo(name)
        images.update({f"{name}:{kind}": make(img, name) for kind, make in KINDS.items()})
    images[f"{DEMO_IMAGES[0]}:12mpx"] = enlarged_demo_jpeg(12, DEMO_IMAGES[0])
    return images


def current() -> dict[str, object]:
    """The model files' hashes and every fixture image's overall score in each layout."""
    images = fixture_images()
    return {"model_sha256": model_hashes(),
            "overall": {layout: {label: score(data, layout).overall for label, data in images.items()}
                        for layout in LAYOUTS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite model_fixture.json from the shipped model")
    if parser.parse_args().write:
        FIXTURE.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n")
        print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    main()

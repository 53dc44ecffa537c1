"""Request bodies in XML (a delete list, a part list), parsed with a bound on their size.

Parsed incrementally, counting elements as they open: past ``max_elements`` parsing stops, so
a body of countless tiny elements never becomes a tree larger than a valid request's.
"""

from __future__ import annotations

from itertools import chain
from xml.etree import ElementTree

from .errors import OSSError

__all__ = ["parse_bounded"]

_STEP = 64 * 1024


def parse_bounded(body: bytes, *, max_elements: int, too_many: OSSError, malformed: OSSError) -> ElementTree.Element:
    """The document's root element; ``too_many`` past ``max_elements`` elements, ``malformed``
    for a body that is not well-formed XML (or declares an encoding Python does not know)."""
    parser = ElementTree.XMLPullParser(events=("start",))
    root: ElementTree.Element | None = None
    elements = 0
    try:
        for piece in chain((body[at:at + _STEP] for at in range(0, len(body), _STEP)), [None]):
            if piece is None:
                parser.close()  # raises ParseError for an unfinished document
            else:
                parser.feed(piece)
            for _event, element in parser.read_events():
                root = element if root is None else root
                elements += 1
                if elements > max_elements:
                    raise too_many
    except (ElementTree.ParseError, LookupError, ValueError):  # LookupError: an unknown declared encoding
        raise malformed from None
    if root is None:
        raise malformed
    return root

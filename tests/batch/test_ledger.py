"""The resume-token ledger: a prefix's token moves past a page only when the page and all
earlier pages are completely written."""

from __future__ import annotations

from worker.batch.ledger import ResumeLedger


def test_token_moves_only_past_contiguous_finished_pages() -> None:
    ledger = ResumeLedger({})
    p1 = ledger.open_page("a/", 2, "T1")
    p2 = ledger.open_page("a/", 1, "T2")
    ledger.complete(p2)                       # a later page finishing first moves nothing
    assert ledger.updates() == {}
    ledger.complete(p1)
    assert ledger.updates() == {}             # page 1 still has an object in flight
    ledger.complete(p1)
    assert ledger.updates() == {"a/": ("T2", False)}
    ledger.close_stream("a/")
    assert ledger.updates() == {"a/": (None, True)}
    assert ledger.open_pages == 0


def test_empty_pages_and_finished_prefixes() -> None:
    ledger = ResumeLedger({"done/": (None, True), "half/": ("T5", False)})
    assert ledger.resume_point("done/") == (None, True)
    assert ledger.resume_point("half/") == ("T5", False)
    assert ledger.resume_point("new/") == (None, False)
    ledger.open_page("half/", 0, "T6")        # everything on it already done or out of shard
    assert ledger.updates() == {"half/": ("T6", False)}
    ledger.open_page("half/", 0, None)
    ledger.close_stream("half/")
    assert ledger.updates() == {"half/": (None, True)}


def test_prefixes_are_independent() -> None:
    ledger = ResumeLedger({})
    a = ledger.open_page("a/", 1, "A1")
    b = ledger.open_page("b/", 1, "B1")
    ledger.complete(b)
    assert ledger.updates() == {"b/": ("B1", False)}
    ledger.complete(a)
    assert ledger.updates() == {"a/": ("A1", False)}

"""``picscore covers``' choosing logic: groupings, ranking, min-score, duplicates, bounded memory."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.actions.covers_choice import CoverChoice, CoverChooser, NoCover
from worker.actions.grouping import MAX_REGEX_CHARS, TOP_LEVEL, DirnameGrouping, make_grouping
from worker.errors import UsageError
from worker.results.formats import format_named, read_rows
from worker.results.schema import RESULT_SCHEMA, ResultRow, Status

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def row(key: str, score: float | None = None, *, size: int = 1000, etag: str = "e1", status: Status | None = None,
        at: datetime = T0, dims: dict[str, float] | None = None, bucket: str = "b") -> dict:
    """A results record exactly as ``read_rows`` gives it back."""
    status = status or (Status.SCORED if score is not None else Status.FAILED)
    return RESULT_SCHEMA.to_record(ResultRow(bucket, key, etag, size, None, status, score, dims or {}, scored_at=at))


def choose(rows: list[dict], top: int = 1, min_score: float | None = None, grouping=None) -> list:
    chooser = CoverChooser(grouping or DirnameGrouping(), top=top, min_score=min_score)
    for record in rows:
        chooser.add(record)
    return list(chooser.results())


# --- groupings ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("by", "kwargs", "key", "group"), [
    ("dirname", {}, "products/shoe-1/a.jpg", "products/shoe-1"),
    ("dirname", {}, "a.jpg", TOP_LEVEL),
    ("depth", {"depth": 2}, "a/b/c/d.jpg", "a/b"),
    ("depth", {"depth": 2}, "a/x.jpg", "a"),
    ("depth", {"depth": 3}, "x.jpg", TOP_LEVEL),
    ("regex", {"regex": r"products/(?P<group>[^/]+)/"}, "img/products/shoe-9/front.jpg", "shoe-9"),
    ("regex", {"regex": r"products/(?P<group>[^/]+)/"}, "other/shoe-9/front.jpg", None),
    ("regex", {"regex": r"(?P<group>[a-z]*)-\d+\.jpg"}, "123-4.jpg", None),  # empty capture: no group
])
def test_groupings(by, kwargs, key, group):
    assert make_grouping(by, **kwargs).group_of(key) == group


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"by": "regex", "regex": "products/(?P<group>[^/]+"}, "does not compile"),
    ({"by": "regex", "regex": r"products/([^/]+)/"}, "(?P<group>...)"),
    ({"by": "regex", "regex": "a" * (MAX_REGEX_CHARS + 1)}, "at most 1000"),
    ({"by": "depth", "depth": 0}, "at least 1"),
    ({"by": "depth"}, "needs --group-depth"),
    ({"by": "dirname", "regex": "(?P<group>x)"}, "--group-regex applies only with --group-by regex"),
    ({"by": "folder"}, "--group-by must be one of"),
])
def test_bad_grouping_options_are_refused(kwargs, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        make_grouping(**kwargs)


def test_a_regex_of_exactly_the_limit_is_accepted():
    pattern = "(?P<group>x)" + "y" * (MAX_REGEX_CHARS - len("(?P<group>x)"))
    assert make_grouping("regex", regex=pattern).describe() == f"regex {pattern}"


def groups_file(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "groups.csv"
    path.write_text(text, encoding=encoding)
    return path


@pytest.mark.parametrize("header", ["key,group\n", "Key, Group\n", "\n"])
def test_groups_file_with_or_without_header(tmp_path, header):
    path = groups_file(tmp_path, header + 'a/1.jpg,shoe\n"b/2,x.jpg",shoe\n\nc.jpg,hat\na/1.jpg,shoe\n', "utf-8-sig")
    grouping = make_grouping("groups-file", groups_file=path)
    assert [grouping.group_of(k) for k in ("a/1.jpg", "b/2,x.jpg", "c.jpg", "key", "d.jpg")] == [
        "shoe", "shoe", "hat", None, None]


def test_groups_file_describe_follows_its_content(tmp_path):
    first = make_grouping("groups-file", groups_file=groups_file(tmp_path, "a,x\n")).describe()
    second = make_grouping("groups-file", groups_file=groups_file(tmp_path, "a,y\n")).describe()
    assert first.startswith("groups-file groups.csv sha256:") and first != second


@pytest.mark.parametrize(("text", "message"), [
    ("key,group\na.jpg,x\nb.jpg,x,extra\n", "line 3: expected 2 columns"),
    ("a.jpg\n", "line 1: expected 2 columns"),
    ("a.jpg,x\nb.jpg,y\na.jpg,z\n", "line 3: key 'a.jpg' is in group 'z' here but in group 'x' on line 1"),
    ("a.jpg,\n", "line 1: the group is empty"),
])
def test_broken_groups_files_are_refused(tmp_path, text, message):
    with pytest.raises(UsageError, match=message):
        make_grouping("groups-file", groups_file=groups_file(tmp_path, text))


def test_missing_groups_file_is_refused(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        make_grouping("groups-file", groups_file=tmp_path / "nope.csv")


# --- choosing ----------------------------------------------------------------------------------------------------

def test_the_original_photo_beats_its_damaged_variants():
    results = choose([
        row("p/shoe/blurred.jpg", 0.41, dims={"BlurScore": 0.2}),
        row("p/shoe/original.jpg", 0.87, dims={"BlurScore": 0.9}),
        row("p/shoe/jpeg-q10.jpg", 0.35),
        row("p/shoe/cropped.jpg", 0.80),
        row("p/hat/only.jpg", 0.5),
    ])
    assert [(r.group, r.key) for r in results] == [("p/hat", "p/hat/only.jpg"), ("p/shoe", "p/shoe/original.jpg")]
    shoe = results[1]
    assert shoe.rank == 1 and shoe.candidates == 4 and shoe.dimensions == {"BlurScore": 0.9}
    assert shoe.margin == pytest.approx(0.07)
    assert results[0].margin is None  # no next candidate


def test_min_score_leaves_a_group_uncovered_rather_than_give_it_a_bad_cover():
    results = choose([row("a/1.jpg", 0.31), row("a/2.jpg", 0.2), row("b/1.jpg", 0.9)], min_score=0.5)
    assert results[0] == NoCover("a", 2, 0.31, "best score 0.31 < min-score 0.5")
    assert isinstance(results[1], CoverChoice) and results[1].key == "b/1.jpg"


def test_top_two_gives_ranks_and_margins_and_min_score_trims_the_second():
    rows = [row("g/a.jpg", 0.9), row("g/b.jpg", 0.7), row("g/c.jpg", 0.6), row("g/d.jpg", 0.1)]
    ranked = choose(rows, top=2)
    assert [(r.rank, r.key) for r in ranked] == [(1, "g/a.jpg"), (2, "g/b.jpg")]
    assert [r.margin for r in ranked] == [pytest.approx(0.2), pytest.approx(0.1)]
    trimmed = choose(rows, top=2, min_score=0.8)
    assert [(r.rank, r.key) for r in trimmed] == [(1, "g/a.jpg")]


def test_ties_go_to_the_larger_file_then_the_smaller_key():
    results = choose([row("g/b.jpg", 0.8, size=10), row("g/c.jpg", 0.8, size=99), row("g/a.jpg", 0.8, size=10)],
                     top=3)
    assert [r.key for r in results] == ["g/c.jpg", "g/a.jpg", "g/b.jpg"]
    assert [r.margin for r in results] == [0.0, 0.0, None]


def test_a_group_without_any_scored_image():
    results = choose([row("g/a.jpg", status=Status.FAILED), row("g/b.jpg", status=Status.SKIPPED)])
    assert results == [NoCover("g", 0, None, "no scored image")]
    gone = choose([row("g/a.jpg", 0.9), row("g/a.jpg", status=Status.MISSING, at=T0 + timedelta(1))])
    assert gone == [NoCover("g", 1, None, "no scored image left: later rows say it is gone")]


def test_counts_split_the_rows_and_name_a_few_keys_in_no_group():
    chooser = CoverChooser(make_grouping("regex", regex=r"^p/(?P<group>[^/]+)/"))
    for record in [row("p/a/1.jpg", 0.5), row("p/a/2.jpg", status=Status.MISSING), *(
            row(f"other/{i}.jpg", 0.9) for i in range(9, 0, -1))]:
        chooser.add(record)
    counts = chooser.counts
    assert (counts.rows, counts.ungrouped, counts.not_scored, counts.groups) == (11, 9, 1, 1)
    assert counts.ungrouped_examples == tuple(f"other/{i}.jpg" for i in range(1, 6))


def test_overlapping_shards_give_an_object_one_rank():
    shard = [row("g/a.jpg", 0.9), row("g/b.jpg", 0.5)]
    chooser = CoverChooser(DirnameGrouping(), top=2)
    for record in shard + shard:
        chooser.add(record)
    results = list(chooser.results())
    assert [(r.rank, r.key, r.margin) for r in results] == [(1, "g/a.jpg", pytest.approx(0.4)), (2, "g/b.jpg", None)]
    assert results[0].candidates == 4 and chooser.counts.duplicates == 2  # candidates counts rows


@pytest.mark.parametrize("newer_first", [False, True])
def test_the_later_scored_version_of_an_object_wins(newer_first):
    old = row("g/a.jpg", 0.95, etag="old", at=T0)
    new = row("g/a.jpg", 0.40, etag="new", at=T0 + timedelta(hours=1))
    rows = [new, old] if newer_first else [old, new]
    results = choose([*rows, row("g/b.jpg", 0.3)], top=2)
    assert [(r.key, r.etag, r.score) for r in results] == [("g/a.jpg", "new", 0.4), ("g/b.jpg", "e1", 0.3)]


def test_a_later_missing_row_withdraws_the_candidate_a_later_failure_of_the_same_version_does_not():
    later = T0 + timedelta(hours=1)
    gone = choose([row("g/a.jpg", 0.9), row("g/a.jpg", status=Status.MISSING, at=later), row("g/b.jpg", 0.3)])
    assert [(r.key, r.margin) for r in gone] == [("g/b.jpg", None)]
    kept = choose([row("g/a.jpg", 0.9), row("g/a.jpg", status=Status.FAILED, at=later), row("g/b.jpg", 0.3)])
    assert [r.key for r in kept] == ["g/a.jpg"]


def test_same_key_in_two_buckets_are_two_objects():
    results = choose([row("g/a.jpg", 0.9, bucket="b2"), row("g/a.jpg", 0.9, bucket="b1")], top=2)
    assert [(r.bucket, r.margin) for r in results] == [("b1", 0.0), ("b2", None)]


@pytest.mark.parametrize(("top", "min_score"), [(0, None), (1, 1.5), (1, float("nan"))])
def test_bad_choice_options_are_refused(top, min_score):
    with pytest.raises(UsageError):
        CoverChooser(DirnameGrouping(), top=top, min_score=min_score)


def test_rows_read_back_from_results_files_of_each_format(tmp_path):
    rows = [row("g/a.jpg", 0.6, dims={"NoiseScore": 0.5}), row("g/b.jpg", 0.8), row("top.jpg", 0.1)]
    chooser = CoverChooser(DirnameGrouping())
    for i, fmt in enumerate(("parquet", "csv", "jsonl")):
        path = tmp_path / f"part{i}.{fmt}"
        format_named(fmt).write_part(rows[i:i + 1], path)
        for record in read_rows(path):
            chooser.add(record)
    assert [(r.group, r.key) for r in chooser.results()] == [("/", "top.jpg"), ("g", "g/b.jpg")]


# --- order independence and bounded memory ------------------------------------------------------------------------

def oracle(rows: list[dict], top: int, min_score: float | None) -> list[tuple]:
    """The unbounded answer: every distinct scored object per group, fully sorted."""
    groups: dict[str, dict] = {}
    for r in rows:
        objects = groups.setdefault(DirnameGrouping().group_of(r["key"]), {})
        if r["status"] == "scored":
            objects[(r["bucket"], r["key"])] = r
    answer = []
    for group in sorted(groups):
        ranked = sorted(groups[group].values(), key=lambda r: (-r["score"], -r["size"], r["key"], r["bucket"]))
        chosen = [r for r in ranked[:top] if min_score is None or r["score"] >= min_score]
        answer += [(group, i + 1, r["key"]) for i, r in enumerate(chosen)] or [(group, None, None)]
    return answer


_objects = st.lists(st.tuples(st.sampled_from(["a", "b", "c/d", ""]), st.integers(0, 30),
                              st.sampled_from([None, 0.1, 0.5, 0.5, 0.9]), st.sampled_from([10, 20])),
                    max_size=40, unique_by=lambda t: (t[0], t[1]))


@settings(max_examples=150, deadline=None)
@given(objects=_objects, repeats=st.lists(st.integers(0, 39), max_size=10), top=st.integers(1, 3),
       min_score=st.sampled_from([None, 0.5]), seed=st.integers(0, 2**32))
def test_results_do_not_depend_on_input_order(objects, repeats, top, min_score, seed):
    rows = [row(f"{d}/{n}.jpg".lstrip("/"), s, size=size) for d, n, s, size in objects]
    rows += [rows[i] for i in repeats if i < len(rows)]  # overlapping shards
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    first, second = choose(rows, top, min_score), choose(shuffled, top, min_score)
    assert first == second  # candidates included: it counts rows, so it is order-independent too
    assert [(r.group, r.rank, r.key) if isinstance(r, CoverChoice) else (r.group, None, None) for r in first] == \
        oracle(rows, top, min_score)


@pytest.mark.parametrize("top", [1, 3])
def test_memory_stays_bounded_by_groups_times_top(top):
    rng = random.Random(7)
    chooser = CoverChooser(DirnameGrouping(), top=top)
    best: dict[str, float] = {}
    for i in range(200_000):
        group, score = f"g{i % 100}", rng.random()
        best[group] = max(best.get(group, 0.0), score)
        chooser.add({"bucket": "b", "key": f"{group}/{i}.jpg", "etag": "e", "size": 1, "status": "scored",
                     "score": score, "dimensions": {}, "scored_at": None})
        if i % 10_000 == 0:
            assert chooser.kept <= 100 * (top + 1)
    assert chooser.kept == 100 * (top + 1)
    firsts = [r for r in chooser.results() if r.rank == 1]
    assert {r.group: r.score for r in firsts} == best and all(r.candidates == 2000 for r in firsts)

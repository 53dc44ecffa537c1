"""The video/snapshot process string: what parses, what OSS refuses and with which code, and
that the client's builder and the server's parser agree."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.oss.snapshot_contract import (
    MALFORMED_EC,
    PARAMETER_EC,
    SnapshotParameterError,
    SnapshotSpec,
    parse_snapshot,
    snapshot_process,
)


def test_the_documented_example() -> None:
    assert parse_snapshot("t_7000,f_jpg,w_800,h_600,m_fast") == SnapshotSpec(7000, 800, 600, True, "jpg", None)
    assert parse_snapshot("t_0,f_png,ar_auto") == SnapshotSpec(0, 0, 0, False, "png", "auto")
    assert parse_snapshot("t_3000,f_jpg,l_800,s_600") == SnapshotSpec(3000, longer=800, shorter=600)
    assert parse_snapshot("ar_h") == SnapshotSpec(orient="h") and parse_snapshot("ar_w") == SnapshotSpec(orient="w")
    assert parse_snapshot("") == SnapshotSpec()  # every parameter has a default
    assert parse_snapshot("ar_auto,t_5") == SnapshotSpec(time_ms=5, orient="auto")  # any order


@pytest.mark.parametrize(("process", "ec"), [
    ("t_-1", PARAMETER_EC["t"]), ("t_1.5", PARAMETER_EC["t"]), ("t_abc", PARAMETER_EC["t"]),
    ("w_-800", PARAMETER_EC["w"]), ("h_-600", PARAMETER_EC["h"]), ("w_８", PARAMETER_EC["w"]),
    ("m_slow", PARAMETER_EC["m"]), ("f_32", PARAMETER_EC["f"]), ("f_gif", PARAMETER_EC["f"]),
    ("ar_on", PARAMETER_EC["ar"]), ("t_1,t_2", PARAMETER_EC["t"]), ("l_-800", PARAMETER_EC["l"]),
    ("s_-600", PARAMETER_EC["s"]), ("t_-32", PARAMETER_EC["t"]),
    ("t", MALFORMED_EC), ("t_", MALFORMED_EC), ("x_1", MALFORMED_EC), ("t_1,,zz", MALFORMED_EC),
    (f"t_{2**64}", PARAMETER_EC["t"]),
])
def test_refused_parameters_carry_their_oss_code(process: str, ec: str) -> None:
    with pytest.raises(SnapshotParameterError) as caught:
        parse_snapshot(process)
    assert caught.value.ec == ec


@given(st.builds(SnapshotSpec, st.integers(0, 10**9), st.integers(0, 8000), st.integers(0, 8000), st.booleans(),
                 st.sampled_from(["jpg", "png"]), st.sampled_from([None, "auto", "h", "w"]), st.integers(0, 8000),
                 st.integers(0, 8000)))
def test_what_the_client_builds_the_server_parses_back(spec: SnapshotSpec) -> None:
    process = snapshot_process(spec)
    assert process.startswith("video/snapshot,")
    assert parse_snapshot(process.split(",", 1)[1]) == spec


@given(st.text(max_size=60))
def test_any_text_parses_or_is_refused_with_an_oss_code(text: str) -> None:
    try:
        parse_snapshot(text)
    except SnapshotParameterError as exc:
        assert exc.ec.startswith("0053-")

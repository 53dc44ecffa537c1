"""``--where`` predicates: grammar, names, three-valued logic, normalised text, and that no input text
makes the compiler raise anything but :class:`PredicateError`."""

from __future__ import annotations

import ast
import operator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from worker.actions.predicate import (
    MAX_COMPARISONS,
    MAX_DEPTH,
    MAX_TEXT,
    Predicate,
    PredicateError,
    compile_predicate,
    field_of,
)
from worker.errors import ExitCode, UsageError

KNOWN = {"BlurScore", "ExposureScore", "NoiseScore", "ColourSaturationScore"}


def row(score: float | None = 0.5, size: int | None = 1000, **dimensions: float) -> dict[str, object]:
    """A record as read_rows gives it; dimensions by short name (``blur=0.1`` → ``BlurScore``)."""
    return {"score": score, "size": size, "dimensions": {field_of(name): value for name, value in dimensions.items()}}


# --- selection ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "record", "selected"), [
    ("blur < 0.2", row(blur=0.1), True),
    ("blur < 0.2", row(blur=0.2), False),
    ("blur <= 0.2", row(blur=0.2), True),
    ("blur > 0.2", row(blur=0.3), True),
    ("blur >= 0.3", row(blur=0.3), True),
    ("blur == 0.3", row(blur=0.3), True),
    ("blur = 0.3", row(blur=0.3), True),
    ("blur != 0.3", row(blur=0.3), False),
    ("0.2 > blur", row(blur=0.1), True),
    ("0.2 <= blur", row(blur=0.1), False),
    ("blur<0.2 and exposure<0.3", row(blur=0.1, exposure=0.2), True),
    ("blur<0.2 and exposure<0.3", row(blur=0.1, exposure=0.4), False),
    ("blur<0.2 or exposure<0.3", row(blur=0.9, exposure=0.2), True),
    ("not blur < 0.2", row(blur=0.5), True),
    ("not not blur < 0.2", row(blur=0.1), True),
    ("blur < 0.2 or noise < 0.2 and exposure > 0.9", row(blur=0.1, noise=0.9, exposure=0.1), True),  # and binds tighter
    ("(blur < 0.2 or noise < 0.2) and exposure > 0.9", row(blur=0.1, noise=0.9, exposure=0.1), False),
    ("0.2 <= blur < 0.5", row(blur=0.2), True),
    ("0.2 <= blur < 0.5", row(blur=0.5), False),
    ("0.5 > blur >= 0.2", row(blur=0.3), True),
    ("score > 0.4 and size >= 1000", row(), True),
    ("size > 1e3", row(size=1001), True),
    ("size < 1000000", row(size=10**7), False),
    ("blur < .5", row(blur=0.4), True),
    ("blur < 1e-3", row(blur=0.0005), True),
    ("score > -1", row(score=0.0), True),
    ("BlurScore < 0.2", row(blur=0.1), True),
    ("BLUR < 0.2 AND Not Exposure > 0.9 Or SCORE > 2", row(blur=0.1, exposure=0.1), True),
    ("blur_score < 0.2", row(blur=0.1), True),
    ("colour_saturation > 0.5", row(colour_saturation=0.6), True),
    ("ColourSaturationScore > 0.5", row(colour_saturation=0.6), True),
    ("sharpness > 0.5", row(sharpness=0.6), True),  # a dimension picscore does not know yet
])
def test_selects(text: str, record: dict[str, object], selected: bool) -> None:
    assert compile_predicate(text)(record) is selected


# --- missing values: SQL's three-valued logic ---------------------------------------------------------------------

ALIBABA = row(score=0.7)                  # Alibaba Cloud: no dimensions at all
UNSCORED = {"score": None, "size": None, "dimensions": {}}


@pytest.mark.parametrize(("text", "record", "value"), [
    ("blur < 0.2", ALIBABA, None),
    ("not blur < 0.2", ALIBABA, None),          # not unknown is unknown: the row is not selected either way
    ("blur >= 0.2", ALIBABA, None),
    ("blur < 0.2 or not blur < 0.2", ALIBABA, None),
    ("blur < 0.2 and score > 0.9", ALIBABA, False),  # False and unknown is False
    ("blur < 0.2 or score > 0.5", ALIBABA, True),    # True or unknown is True
    ("blur < 0.2 and score > 0.5", ALIBABA, None),
    ("blur < 0.2 or score > 0.9", ALIBABA, None),
    ("not (blur < 0.2 and score > 0.9)", ALIBABA, True),
    ("score < 0.5", UNSCORED, None),
    ("not score < 0.5", UNSCORED, None),
    ("size > 0", UNSCORED, None),
    ("blur < 0.2", {"score": 0.5, "size": 1}, None),               # no dimensions key
    ("blur < 0.2", {"score": 0.5, "size": 1, "dimensions": None}, None),
    ("blur < 0.2", row(blur=float("nan")), None),
    ("not blur < 0.2", row(blur=float("nan")), None),
])
def test_missing_values_are_unknown(text: str, record: dict[str, object], value: bool | None) -> None:
    predicate = compile_predicate(text)
    assert predicate.evaluate(record) is value
    assert predicate(record) is (value is True)


def test_a_filter_and_its_negation_never_both_select_a_row() -> None:
    records = [ALIBABA, UNSCORED, row(blur=0.1), row(blur=0.3), row(score=None, blur=0.1)]
    where = compile_predicate("blur < 0.2 or score > 0.6")
    negated = compile_predicate("not (blur < 0.2 or score > 0.6)")
    assert not any(where(record) and negated(record) for record in records)


# --- names --------------------------------------------------------------------------------------------------------

def test_names_are_canonical() -> None:
    predicate = compile_predicate("blur < 0.2 and BlurScore > 0.1 and SCORE > 0 and Size > 1 or not noise_score < 1")
    assert predicate.names == {"BlurScore", "NoiseScore", "score", "size"}


@pytest.mark.parametrize(("typed", "field"), [
    ("score", "score"), ("SCORE", "score"), ("size", "size"), ("blur", "BlurScore"), ("Blur", "BlurScore"),
    ("blurscore", "BlurScore"), ("BLURSCORE", "BlurScore"), ("blur_score", "BlurScore"), ("BlurScore", "BlurScore"),
    ("colour_saturation", "ColourSaturationScore"), ("ColourSaturationScore", "ColourSaturationScore"),
    ("sizescore", "SizeScore"), ("SizeScore", "SizeScore"),
])
def test_field_of(typed: str, field: str) -> None:
    assert field_of(typed) == field


@pytest.mark.parametrize("typed", ["blur", "BLUR", "BlurScore", "blurscore", "blur_score", "colour_saturation",
                                   "coloursaturation", "COLOURSATURATIONSCORE", "score", "size"])
def test_known_dimensions_accept_every_spelling(typed: str) -> None:
    compile_predicate(f"{typed} < 0.5", known_dimensions=KNOWN)


def test_known_dimensions_are_matched_to_the_services_own_names() -> None:
    known = {"Weird_Score", "ColourSaturationScore", "Sharpness"}
    predicate = compile_predicate("coloursaturationscore > 0.5 and weird < 1 and SHARPNESS > 0", known_dimensions=known)
    assert predicate.names == known
    assert predicate({"score": 1, "size": 1, "dimensions": {"ColourSaturationScore": 0.6, "Weird_Score": 0.5,
                                                            "Sharpness": 0.1}})


def test_unknown_name_is_refused_with_a_suggestion() -> None:
    with pytest.raises(PredicateError) as caught:
        compile_predicate("score > 0.5 and blurr < 0.2", known_dimensions=KNOWN)
    message = str(caught.value)
    assert "unknown name 'blurr' (did you mean 'blur'?)" in message
    assert "known names: score, size, blur, colour_saturation, exposure, noise" in message
    assert caught.value.column == 17


def test_unknown_name_without_a_close_one() -> None:
    with pytest.raises(PredicateError, match=r"unknown name 'zzz'; known names: score, size, blur"):
        compile_predicate("zzz < 1", known_dimensions={"BlurScore"})


# --- normalised text ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "normalised"), [
    ("blur<0.2", "blur < 0.2"),
    ("0.2<=BLUR<.5 AND (noise>1e-3 OR NOT score=0.5)",
     "blur >= 0.2 and blur < 0.5 and (noise > 0.001 or not score == 0.5)"),
    ("(blur < 1 and noise < 1) and exposure < 1", "blur < 1 and noise < 1 and exposure < 1"),
    ("(blur < 1 or noise < 1) and exposure < 1", "(blur < 1 or noise < 1) and exposure < 1"),
    ("blur < 1 or (noise < 1 and exposure < 1)", "blur < 1 or noise < 1 and exposure < 1"),
    ("not (blur < 1 and noise < 1)", "not (blur < 1 and noise < 1)"),
    ("(((blur < 1)))", "blur < 1"),
    ("BlurScore < 1 and blur_score < 1", "blur < 1 and blur < 1"),
    ("size > 1000000", "size > 1000000"),
    ("size > 1e20", "size > 1e+20"),
    ("SizeScore > 0.5", "SizeScore > 0.5"),
    ("ColourSaturationScore > 0.5", "colour_saturation > 0.5"),
])
def test_str_is_normalised(text: str, normalised: str) -> None:
    predicate = compile_predicate(text)
    assert str(predicate) == normalised
    assert str(compile_predicate(str(predicate))) == normalised
    assert isinstance(predicate, Predicate)


# --- errors ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "problem", "column"), [
    ("", "the expression is empty", None),
    ("  \t ", "the expression is empty", None),
    ("(blur < 0.2", "expected ')' to close the '(' at column 1, found the end of the expression", 12),
    ("((blur < 0.2)", "expected ')' to close the '(' at column 1", 14),
    ("blur < 0.2)", "unexpected ')' with no '(' to close", 11),
    ("()", "expected a comparison such as 'blur < 0.2', 'not' or '(', found ')'", 2),
    ("blur < 0.2 noise > 0.1", "unexpected 'noise'; join conditions with 'and' or 'or'", 12),
    ("blur => 0.2", "unknown operator '=>' (did you mean '>='?)", 6),
    ("blur <> 0.2", "unknown operator '<>' (did you mean '!='?)", 6),
    ("blur << 0.2", "unknown operator '<<' (use < <= > >= == !=)", 6),
    ("blur", "expected a comparison operator after 'blur', found the end of the expression", 5),
    ("blur and noise < 1", "expected a comparison operator after 'blur', found 'and'", 6),
    ("0.5", "expected a comparison operator after '0.5', found the end of the expression", 4),
    ("< 0.5", "expected a comparison such as 'blur < 0.2', 'not' or '(', found '<'", 1),
    ("0.2 < 0.5", "cannot compare two numbers", 1),
    ("blur < noise", "cannot compare 'blur' with 'noise'", 1),
    ("blur < and x", "expected a number after '<', found 'and'", 8),
    ("0.2 < (blur)", "expected a name after '<', found '('", 7),
    ("0.2 < blur <", "expected a number after '<', found the end of the expression", 13),
    ("0.2 < blur > 0.5", "a chained comparison must go one way", 12),
    ("0.2 < blur == 0.5", "a chained comparison must go one way", 12),
    ("blur < 0.2 < 0.5", "unexpected '<': write a range as 0.2 <= blur < 0.5", 12),
    ("blur < 0.2 and", "found the end of the expression", 15),
    ("and blur < 0.2", "found 'and'", 1),
    ("not", "found the end of the expression", 4),
    ("blur < 0.2 é", "unexpected character 'é'", 12),
    ("blur < 0.2 ; drop", "unexpected character ';'", 12),
    ("blur < 0,2", "unexpected character ','", 9),
    ("__import__('os') < 1", "unexpected character '_'", 1),
    ("blur < 1.2.3", "malformed number '1.2.3'", 8),
    ("blur < 10MB", "malformed number '10MB'", 8),
    ("blur < 1e", "malformed number '1e'", 8),
    ("blur < 1e999", "number out of range '1e999'", 8),
    ("blur < inf", "cannot compare 'blur' with 'inf'", 1),
    ("x" * (MAX_TEXT + 1), f"the expression is {MAX_TEXT + 1} characters long, more than {MAX_TEXT}", None),
])
def test_errors(text: str, problem: str, column: int | None) -> None:
    with pytest.raises(PredicateError) as caught:
        compile_predicate(text)
    assert problem in caught.value.problem
    assert caught.value.column == column
    assert caught.value.text == text


def test_error_message_points_at_the_column() -> None:
    with pytest.raises(PredicateError) as caught:
        compile_predicate("blur < and x")
    assert str(caught.value).splitlines() == [
        "--where, column 8: expected a number after '<', found 'and'",
        "  blur < and x",
        "         ^",
    ]


def test_error_caret_in_a_long_text_shows_a_window() -> None:
    text = "blur < 1 and " * 40 + "noise <"
    with pytest.raises(PredicateError) as caught:
        compile_predicate(text)
    _, shown, caret = str(caught.value).splitlines()
    assert shown.startswith("  ...") and shown.endswith("noise <")
    assert caret.index("^") == len(shown)  # just after the text: the missing number


def test_error_caret_replaces_what_would_misalign_it() -> None:
    with pytest.raises(PredicateError) as caught:
        compile_predicate("blur\t< 1 \u00e9")
    _, shown, caret = str(caught.value).splitlines()
    assert shown == "  blur?< 1 ?"
    assert caret.index("^") == shown.index("?", 7)


def test_predicate_error_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as caught:
        compile_predicate("blur <")
    assert caught.value.exit_code == ExitCode.CONFIG == 2
    assert caught.value.user_message().startswith("--where, column 7: ")


# --- limits ---------------------------------------------------------------------------------------------------

def test_comparisons_up_to_the_limit() -> None:
    predicate = compile_predicate(" or ".join(["b<1"] * MAX_COMPARISONS))
    assert predicate(row(b=0.5))
    with pytest.raises(PredicateError, match=f"more than {MAX_COMPARISONS} comparisons"):
        compile_predicate(" or ".join(["b<1"] * (MAX_COMPARISONS + 1)))


def test_a_chain_counts_two_comparisons() -> None:
    compile_predicate(" or ".join(["0<b<1"] * (MAX_COMPARISONS // 2)))
    with pytest.raises(PredicateError, match="comparisons"):
        compile_predicate(" or ".join(["0<b<1"] * (MAX_COMPARISONS // 2)) + " or b<1")


@pytest.mark.parametrize(("opening", "closing", "per_repeat"), [("(", ")", 1), ("not ", "", 1), ("(not ", ")", 2)])
def test_nesting_up_to_the_limit(opening: str, closing: str, per_repeat: int) -> None:
    levels = MAX_DEPTH // per_repeat
    predicate = compile_predicate(opening * levels + "b < 1" + closing * levels)
    assert predicate.evaluate(row(b=0.5)) is (levels % 2 == 0 if "not" in opening else True)
    with pytest.raises(PredicateError, match=f"nesting deeper than {MAX_DEPTH}"):
        compile_predicate(opening * (levels + 1) + "b < 1" + closing * (levels + 1))


@pytest.mark.parametrize("text", ["(" * MAX_TEXT, "not " * (MAX_TEXT // 4), "(" * 499 + ")" * 499, "-" * MAX_TEXT])
def test_deep_input_never_exhausts_the_stack(text: str) -> None:
    with pytest.raises(PredicateError):
        compile_predicate(text)


def test_deepest_predicate_evaluates_and_prints() -> None:
    text = "(b < 1 or " * MAX_DEPTH + "b > 2" + ")" * MAX_DEPTH
    predicate = compile_predicate(text)
    assert predicate(row(b=3)) and not predicate(row(b=1.5))
    assert str(compile_predicate(str(predicate))) == str(predicate)


# --- properties -----------------------------------------------------------------------------------------------

WORDS = ["blur", "noise", "BlurScore", "score", "size", "and", "or", "not", "AND", "(", ")", "<", "<=", ">", ">=",
         "==", "=", "!=", "=>", "<>", "0.2", ".5", "1e-3", "-1", "1e999", "x", "é", ",", "1.2.3", "!"]

ANY_TEXT = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="blurnoisez0123456789.e-+<>=!() ", max_size=80),
    st.lists(st.sampled_from(WORDS), max_size=30).map(" ".join),
    st.lists(st.sampled_from(WORDS), max_size=30).map("".join),
)
RECORDS = [row(), ALIBABA, UNSCORED, row(blur=0.1, noise=0.9, size=10**6), row(score=0.1, blur=0.5, x=0.2)]


@settings(max_examples=400, deadline=None)
@given(ANY_TEXT)
@example("(" * 1000)
@example("not " * 250)
@example("\ud800 < 1")
@example("blur\x00< 1")
def test_any_text_compiles_or_raises_predicate_error(text: str) -> None:
    try:
        predicate = compile_predicate(text, known_dimensions=None if len(text) % 2 else KNOWN)
    except PredicateError as error:
        assert str(error).startswith("--where")
        return
    normalised = str(predicate)
    again = compile_predicate(normalised)
    assert str(again) == normalised
    for record in RECORDS:
        assert predicate.evaluate(record) is again.evaluate(record)
        assert predicate(record) in (True, False)


_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}
_FIELDS = {"blur": "BlurScore", "noise": "NoiseScore", "x": "XScore"}


def _expression(depth: int) -> st.SearchStrategy[str]:
    comparison = st.builds("{} {} {}".format, st.sampled_from(["blur", "noise", "score", "x"]),
                           st.sampled_from(list(_OPS)), st.sampled_from(["0", "0.25", "0.5", "1"]))
    if depth == 0:
        return comparison
    inner = _expression(depth - 1)
    return st.one_of(comparison, inner.map("not {}".format), inner.map("({})".format),
                     st.builds("{} and {}".format, inner, inner), st.builds("{} or {}".format, inner, inner))


def _reference(text: str, record: dict[str, object]) -> bool | None:
    """The same expression by another route: comparisons become Kleene values (0, 0.5, 1), and/or/not become
    Python's & | ~ (the same precedence), and Python's own parser builds the tree: and is min, or max, not 1 - x."""
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    out: list[str] = []
    while tokens:
        token = tokens.pop(0)
        if token in _FIELDS or token == "score":
            op, number = tokens.pop(0), float(tokens.pop(0))
            value = record["score"] if token == "score" else record["dimensions"].get(_FIELDS[token])  # type: ignore[union-attr]
            out.append("U" if value is None else "T" if _OPS[op](value, number) else "F")
        else:
            out.append({"and": "&", "or": "|", "not": "~"}.get(token, token))
    result = _kleene(ast.parse(" ".join(out), mode="eval").body)
    return {1.0: True, 0.0: False}.get(result)


def _kleene(node: ast.expr) -> float:
    if isinstance(node, ast.Name):
        return {"T": 1.0, "F": 0.0, "U": 0.5}[node.id]
    if isinstance(node, ast.UnaryOp):
        return 1.0 - _kleene(node.operand)
    assert isinstance(node, ast.BinOp)
    combine = min if isinstance(node.op, ast.BitAnd) else max
    return combine(_kleene(node.left), _kleene(node.right))


@settings(max_examples=300, deadline=None)
@given(_expression(3), st.sampled_from([*RECORDS, row(blur=0.25, noise=0.5, x=1, score=None)]))
def test_evaluation_matches_kleene_logic(text: str, record: dict[str, object]) -> None:
    assert compile_predicate(text).evaluate(record) is _reference(text, record)

"""``--where`` expressions, a small safe language that selects results rows by their scores, such as
``blur < 0.2 and (exposure < 0.3 or not noise >= 0.9)`` or ``0.2 <= blur < 0.5 and size > 1000000``.
Grammar; keywords and names are case-insensitive, ``=`` is ``==``::

    expr       := and ('or' and)*
    and        := not ('and' not)*
    not        := 'not' not | atom
    atom       := '(' expr ')' | comparison
    comparison := NAME OP NUMBER | NUMBER OP NAME | NUMBER OP NAME OP NUMBER   (a chain goes one way)
    OP         := < | <= | > | >= | == | = | !=          NUMBER := 0.2 | .5 | 1e-3 | -1

Names: ``score`` (overall), ``size`` (bytes), a dimension's short name (``blur``) or field (``BlurScore``;
:func:`field_of`). The text is parsed once, by hand (never ``eval``), into a tree of closures: a row costs a
few dict look-ups and comparisons, no parsing, no regex. Length, comparison count and nesting are capped,
so no input can exhaust the stack. Missing values follow SQL's three-valued logic: a comparison on a value
the row lacks (no overall score; a dimension Alibaba Cloud does not return) is *unknown*, ``not unknown``
is unknown, ``unknown and False`` is False, ``unknown or True`` is True, and a row is selected only when
the whole expression is True. So ``not blur < 0.2``, like ``blur >= 0.2``, skips rows without a blur
score: a filter and its negation never both select a row; a missing value is neither good nor bad.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Collection
from functools import partial
from typing import Any, NoReturn

from ..errors import UsageError
from ..oss.score_contract import dimension_field
from ..results.schema import Record

__all__ = ["Predicate", "PredicateError", "compile_predicate", "field_of", "MAX_TEXT", "MAX_COMPARISONS", "MAX_DEPTH"]

MAX_TEXT = 1000        # characters of one expression
MAX_COMPARISONS = 100  # comparisons in one expression (a chain counts two)
MAX_DEPTH = 50         # nested '(' and 'not': bounds the parser's, the evaluator's and str()'s recursion

Node = tuple[Any, ...]  # ("cmp", name, op, number) | ("not", node) | ("and" | "or", (node, ...))
Test = Callable[[Record], bool | None]
Token = tuple[str, str, int]  # kind, text, 1-based column; kinds: number name op ( ) and or not end

_OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
              "==": operator.eq, "!=": operator.ne}
_MISTAKES = {"=>": ">=", "=<": "<=", "<>": "!=", "!": "!=", "===": "==", "!==": "!="}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_KEYWORDS = frozenset({"and", "or", "not"})
_ROW_FIELDS = ("score", "size")
_TOKEN = re.compile(r"(?P<space>\s+)|(?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
                    r"|(?P<name>[A-Za-z][A-Za-z0-9_]*)|(?P<op>[<>=!]+)|(?P<paren>[()])|(?P<junk>.)", re.ASCII)
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]+", re.ASCII)
_CAMEL = re.compile(r"(?:[A-Z][a-z0-9]*)+Score")
_NONE: dict[str, float] = {}


class PredicateError(UsageError):
    """A ``--where`` text that does not compile (exit code 2): the column (1-based) and the problem, then
    the text with a caret under it. ``problem``, ``text``, ``column`` serve callers that show it otherwise."""

    def __init__(self, problem: str, text: str, column: int | None = None) -> None:
        self.problem, self.text, self.column = problem, text, column
        where = "" if column is None else f", column {column}"
        super().__init__(f"--where{where}: {problem}" + ("" if column is None else _caret(text, column)))


def _caret(text: str, column: int, width: int = 70) -> str:
    """The text around ``column`` (printable ASCII only, so the caret lines up), and a caret under it."""
    start = max(0, min(column - 1 - width // 2, len(text) - width))
    shown = "".join(c if " " <= c <= "~" else "?" for c in text[start:start + width])
    before, after = "..." if start else "", "..." if start + width < len(text) else ""
    return f"\n  {before}{shown}{after}\n  {' ' * (len(before) + column - 1 - start)}^"


def field_of(name: str) -> str:
    """The canonical value name for what a user typed: ``score``, ``size`` or a dimension field.

    ``blur``, ``BLUR``, ``blur_score``, ``blurscore`` → ``BlurScore``; a CamelCase field such as
    ``ColourSaturationScore`` stays as typed. An all-lowercase multi-word field cannot be split
    (``coloursaturationscore``): type ``colour_saturation`` or ``ColourSaturationScore``, or pass
    ``known_dimensions``, whose names are matched ignoring case and underscores."""
    lowered = name.lower()
    if lowered in _ROW_FIELDS or _CAMEL.fullmatch(name):
        return lowered if lowered in _ROW_FIELDS else name
    return dimension_field(lowered[:-5].rstrip("_") if lowered.endswith("score") else lowered)


def _short_of(field: str) -> str:
    """How a predicate shows a value name: ``BlurScore`` → ``blur`` when that reads back the same."""
    short = re.sub(r"(?<!^)(?=[A-Z])", "_", field.removesuffix("Score")).lower()
    usable = re.fullmatch(r"[a-z][a-z0-9_]*", short) and short not in _KEYWORDS and short not in _ROW_FIELDS
    return short if usable and dimension_field(short) == field else field


def _known_index(known: Collection[str]) -> dict[str, str]:
    """Loose key (lowercase, no underscores; with and without ``score``) → field. Known dimensions are the
    fields as rows carry them (``BlurScore``), kept verbatim: whatever a service names them, they match."""
    index: dict[str, str] = {}
    for field in known:
        key = field.lower().replace("_", "")
        index[key] = index[key.removesuffix("score") or key] = field
    return index


def _unknown_name(name: str, index: dict[str, str]) -> str:
    """The message for a name outside ``known_dimensions``: a suggestion and every known name."""
    shown = {key: _short_of(field) for key, field in index.items()} | {row: row for row in _ROW_FIELDS}
    close = difflib.get_close_matches(name.lower().replace("_", ""), list(shown), n=1)
    hint = f" (did you mean '{shown[close[0]]}'?)" if close else ""
    known = ", ".join([*_ROW_FIELDS, *sorted({_short_of(field) for field in index.values()})])
    return f"unknown name '{name}'{hint}; known names: {known}"


def _tokens(text: str) -> list[Token]:
    """The tokens without spaces, ending with ``end``; refuses what is not of the language where it stands."""
    tokens: list[Token] = []
    for match in _TOKEN.finditer(text):
        kind, word, column = match.lastgroup or "", match.group(), match.start() + 1
        if kind == "junk":
            raise PredicateError(f"unexpected character {word!r}", text, column)
        if kind == "number" and ((tail := _NUMBER_TAIL.match(text, match.end())) or not math.isfinite(float(word))):
            problem = f"malformed number '{word}{tail.group()}'" if tail else f"number out of range '{word}'"
            raise PredicateError(problem, text, column)
        if kind == "op" and word not in _OPERATORS and word != "=":
            hint = f"did you mean '{_MISTAKES[word]}'?" if word in _MISTAKES else "use < <= > >= == !="
            raise PredicateError(f"unknown operator '{word}' ({hint})", text, column)
        if kind == "paren" or (kind == "name" and word.lower() in _KEYWORDS):
            kind = word = word.lower()
        if kind != "space":
            tokens.append((kind, "==" if word == "=" else word, column))
    return [*tokens, ("end", "", len(text) + 1)]


class _Parser:
    """Recursive descent over the tokens; ``depth`` counts the open '(' and 'not', capped at MAX_DEPTH."""

    def __init__(self, text: str, known: dict[str, str] | None) -> None:
        self.text, self.tokens, self.known = text, _tokens(text), known
        self.position = self.comparisons = 0
        self.names: set[str] = set()

    def fail(self, problem: str, token: Token) -> NoReturn:
        raise PredicateError(problem, self.text, token[2])

    def peek(self) -> Token:
        return self.tokens[self.position]

    def found(self) -> str:
        kind, word, _ = self.peek()
        return "the end of the expression" if kind == "end" else f"'{word}'"

    def take(self, *kinds: str) -> Token | None:
        token = self.peek()
        self.position += token[0] in kinds
        return token if token[0] in kinds else None

    def junction(self, keyword: str, depth: int) -> Node:
        """'or' joins and-junctions, 'and' negations; flat: ``(a and b) and c`` is one three-way and."""
        operand = partial(self.junction, "and") if keyword == "or" else self.negation
        nodes = [operand(depth)]
        while self.take(keyword):
            nodes.append(operand(depth))
        flat = tuple(child for node in nodes for child in (node[1] if node[0] == keyword else (node,)))
        return flat[0] if len(flat) == 1 else (keyword, flat)

    def negation(self, depth: int) -> Node:
        if depth >= MAX_DEPTH and self.peek()[0] in ("not", "("):
            self.fail(f"nesting deeper than {MAX_DEPTH} levels of '(' and 'not'", self.peek())
        if self.take("not"):
            return "not", self.negation(depth + 1)
        if not (opening := self.take("(")):
            return self.comparison()
        node = self.junction("or", depth + 1)
        if not self.take(")"):
            self.fail(f"expected ')' to close the '(' at column {opening[2]}, found {self.found()}", self.peek())
        return node

    def comparison(self) -> Node:
        """NAME OP NUMBER, NUMBER OP NAME, or the chain NUMBER OP NAME OP NUMBER; stored name first."""
        if not (left := self.take("name", "number")):
            self.fail(f"expected a comparison such as 'blur < 0.2', 'not' or '(', found {self.found()}", self.peek())
        if not (op := self.take("op")):
            self.fail(f"expected a comparison operator after '{left[1]}', found {self.found()}", self.peek())
        if not (right := self.take("name", "number")):
            wanted = "a number" if left[0] == "name" else "a name"
            self.fail(f"expected {wanted} after '{op[1]}', found {self.found()}", self.peek())
        if left[0] == right[0]:
            sides = "two numbers" if left[0] == "number" else f"'{left[1]}' with '{right[1]}'"
            self.fail(f"cannot compare {sides}: compare a name with a number", left)
        if left[0] == "name":
            if self.peek()[0] == "op":
                self.fail(f"unexpected '{self.peek()[1]}': write a range as 0.2 <= blur < 0.5", self.peek())
            return self.compared(left, op[1], right)
        node = self.compared(right, _FLIPPED[op[1]], left)
        if not (second := self.take("op")):
            return node
        if not (bound := self.take("number")):
            self.fail(f"expected a number after '{second[1]}', found {self.found()}", self.peek())
        if {op[1], second[1]} - {"<", "<="} and {op[1], second[1]} - {">", ">="}:
            self.fail("a chained comparison must go one way, as in 0.2 <= blur < 0.5", second)
        return "and", (node, self.compared(right, second[1], bound))

    def compared(self, name: Token, op: str, number: Token) -> Node:
        """The comparison node, its name canonical; counts comparisons against MAX_COMPARISONS."""
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            self.fail(f"more than {MAX_COMPARISONS} comparisons", name)
        canonical = field_of(name[1])
        if self.known is not None and canonical not in _ROW_FIELDS:
            canonical = self.known.get(name[1].lower().replace("_", "")) or self.fail(
                _unknown_name(name[1], self.known), name)
        self.names.add(canonical)
        return "cmp", canonical, op, float(number[1])


def _comparison(name: str, op: str, number: float) -> Test:
    """One comparison as a closure; None (unknown) when the row lacks the value or it is NaN."""
    compare, of_row = _OPERATORS[op], name in _ROW_FIELDS
    def test(record: Record) -> bool | None:
        value = record.get(name) if of_row else (record.get("dimensions") or _NONE).get(name)
        return None if value is None or value != value else compare(value, number)
    return test


def _junction(tests: tuple[Test, ...], decisive: bool) -> Test:
    """``and`` (decisive False) or ``or`` (decisive True): the decisive value wins, else unknown wins."""
    def test(record: Record) -> bool | None:
        result: bool | None = not decisive
        for part in tests:
            value = part(record)
            if value is decisive:
                return decisive
            if value is None:
                result = None
        return result
    return test


def _compile(node: Node) -> Test:
    if node[0] == "cmp":
        return _comparison(*node[1:])
    if node[0] != "not":
        return _junction(tuple(_compile(child) for child in node[1]), node[0] == "or")
    inner = _compile(node[1])
    def negated(record: Record) -> bool | None:
        value = inner(record)
        return None if value is None else not value
    return negated


def _render(node: Node) -> str:
    """The normalised text: lowercase keywords, short names, names first, minimal parentheses."""
    if node[0] == "cmp":
        number = node[3]
        shown = str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
        return f"{_short_of(node[1])} {node[2]} {shown}"
    if node[0] == "not":
        return f"not ({_render(node[1])})" if node[1][0] in ("and", "or") else f"not {_render(node[1])}"
    parts = (f"({_render(child)})" if node[0] == "and" and child[0] == "or" else _render(child) for child in node[1])
    return f" {node[0]} ".join(parts)


class Predicate:
    """A compiled ``--where``: called on a record (``score``, ``size``, ``dimensions``), whether the row is
    selected. ``names``: the canonical value names it reads; ``str()``: the normalised text (fingerprints)."""

    __slots__ = ("_test", "_text", "names")

    def __init__(self, node: Node, names: Collection[str]) -> None:
        self._test, self._text = _compile(node), _render(node)
        self.names: frozenset[str] = frozenset(names)

    def __call__(self, record: Record) -> bool:
        return self._test(record) is True

    def evaluate(self, record: Record) -> bool | None:
        """The three-valued result: None when the missing values leave the answer unknown."""
        return self._test(record)

    def __str__(self) -> str:
        return self._text


def compile_predicate(text: str, known_dimensions: Collection[str] | None = None) -> Predicate:
    """Compile ``text`` once, or raise :class:`PredicateError`. With ``known_dimensions`` (the fields rows
    carry, such as ``BlurScore``) other names are refused; without, any name is a dimension a service may return."""
    if len(text) > MAX_TEXT:
        raise PredicateError(f"the expression is {len(text)} characters long, more than {MAX_TEXT}", text)
    if not text.strip():
        raise PredicateError("the expression is empty", text)
    parser = _Parser(text, None if known_dimensions is None else _known_index(known_dimensions))
    node = parser.junction("or", 0)
    if parser.peek()[0] != "end":
        hint = " with no '(' to close" if parser.peek()[0] == ")" else "; join conditions with 'and' or 'or'"
        parser.fail(f"unexpected {parser.found()}{hint}", parser.peek())
    return Predicate(node, parser.names)

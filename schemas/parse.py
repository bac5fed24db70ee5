"""Parse a model's ``results = [Cls("mention"), ...]`` reply back into (class, mention) pairs.

Safe by construction: the reply is only ever handed to ``ast.parse`` (never ``eval``), one
list item at a time, so one bad item costs only itself and a reply cut off mid-list keeps
every complete item before the cut. Problems are returned, never raised.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from schemas.ontology import ontology_classes


class ProblemKind(StrEnum):
    """Why (part of) a reply could not be read."""

    NO_RESULTS = "no_results"  # no `results = [` (nor a bare list) in the reply
    MALFORMED = "malformed"  # an item is not valid Python
    NOT_AN_ENTITY = "not_an_entity"  # valid Python, but not `Cls("mention")`
    NOT_A_STRING = "not_a_string"  # the argument is not a plain string literal
    EMPTY_MENTION = "empty_mention"  # `Cls("")`
    UNKNOWN_CLASS = "unknown_class"  # a class name outside `known`
    TRUNCATED = "truncated"  # the list is never closed


class ParsedEntity(NamedTuple):
    """One item of the results list: the class name and the mention text."""

    class_name: str
    mention: str


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a reply; ``item`` is the 0-based list position it concerns."""

    kind: ProblemKind
    detail: str
    item: int | None = None
    source: str = ""  # the item's code as the model wrote it
    class_name: str | None = None  # set for UNKNOWN_CLASS
    mention: str | None = None  # set for UNKNOWN_CLASS


@dataclass(frozen=True)
class ParseResult:
    """The entities read from a reply, in order, and the problems met on the way."""

    entities: tuple[ParsedEntity, ...]
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """True when the whole reply was read without any problem."""
        return not self.problems


_RESULTS = re.compile(r"(?<![\w.])results\s*=\s*\[")
_BARE_LIST = re.compile(r"^[ \t]*\[", re.MULTILINE)
_OPENER = {")": "(", "]": "[", "}": "{"}


def _skip_string(text: str, i: int) -> int:
    """Return the index just after the string literal whose opening quote is at ``i``.

    A backslash always hides the next character (true of raw strings too, as far as
    finding the end goes). An unterminated one-line string ends at the newline; an
    unterminated triple-quoted string runs to the end of the text.
    """
    quote = text[i]
    triple = text.startswith(quote * 3, i)
    i += 3 if triple else 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
        elif triple and text.startswith(quote * 3, i):
            return i + 3
        elif not triple and ch == quote:
            return i + 1
        elif not triple and ch == "\n":
            return i
        else:
            i += 1
    return n


def _split_items(text: str, start: int) -> tuple[list[str], bool]:
    """Split the list body that begins at ``start`` (just after ``[``) into item texts.

    Returns the items and whether the list was closed. A ``]`` with no ``[`` open inside
    the list closes it even when a ``(`` is left open, so an unbalanced item is reported
    as malformed, not as a reply cut short.
    """
    items: list[str] = []
    open_brackets: list[str] = []
    item_start = i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            i = _skip_string(text, i)
            continue
        if ch == "#":
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
            continue
        if ch in "([{":
            open_brackets.append(ch)
        elif ch in ")]}":
            opener = _OPENER[ch]
            if ch == "]" and opener not in open_brackets:
                items.append(text[item_start:i])
                return items, True
            if opener in open_brackets:  # a stray closer is left for ast to report
                del open_brackets[len(open_brackets) - 1 - open_brackets[::-1].index(opener) :]
        elif ch == "," and not open_brackets:
            items.append(text[item_start:i])
            item_start = i + 1
        i += 1
    items.append(text[item_start:])
    return items, False


def _read_item(index: int, source: str, known: set[str]) -> ParsedEntity | Problem:
    """Read one list item with ``ast``: an entity, or the problem that stops it."""
    code = source.strip()
    try:
        tree = ast.parse(f"(\n{code}\n)", mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        reason = getattr(exc, "msg", None) or type(exc).__name__
        return Problem(
            ProblemKind.MALFORMED, f"item {index} is not valid Python: {reason}", index, code
        )
    node = tree.body
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        return Problem(
            ProblemKind.NOT_AN_ENTITY, f'item {index} is not a call like Person("...")', index, code
        )
    class_name = node.func.id
    if len(node.args) == 1 and not node.keywords:
        arg = node.args[0]
    elif not node.args and len(node.keywords) == 1 and node.keywords[0].arg == "name":
        arg = node.keywords[0].value
    else:
        return Problem(
            ProblemKind.NOT_AN_ENTITY,
            f"item {index}: {class_name}(...) must take exactly one mention string",
            index,
            code,
        )
    if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
        return Problem(
            ProblemKind.NOT_A_STRING,
            f"item {index}: the argument of {class_name}(...) is not a string literal",
            index,
            code,
        )
    mention = arg.value
    if class_name not in known:
        return Problem(
            ProblemKind.UNKNOWN_CLASS,
            f"item {index}: unknown class {class_name!r}",
            index,
            code,
            class_name,
            mention,
        )
    if not mention:
        return Problem(ProblemKind.EMPTY_MENTION, f"item {index}: empty mention", index, code)
    return ParsedEntity(class_name, mention)


def default_known() -> set[str]:
    """Return the class names accepted by default: every ontology class but the base Entity."""
    return set(ontology_classes()) - {"Entity"}


def parse_results(code: str, known: set[str] | None = None) -> ParseResult:
    """Read ``results = [Cls("mention"), ...]`` from a model reply; report, never raise.

    Text around the list (prose, code fences) is ignored; the first ``results = [`` wins,
    else a line that starts with ``[``. ``known`` is the set of accepted class names
    (default: ``default_known()``); pass the classes shown in the prompt to also reject
    types outside the schema. Items with problems are left out of ``entities`` and each
    gets one ``Problem``; a list that is never closed keeps its complete items and adds a
    ``TRUNCATED`` problem.
    """
    known = default_known() if known is None else known
    match = _RESULTS.search(code) or _BARE_LIST.search(code)
    if match is None:
        return ParseResult(
            (), (Problem(ProblemKind.NO_RESULTS, "no `results = [...]` list in the reply"),)
        )
    items, closed = _split_items(code, match.end())
    entities: list[ParsedEntity] = []
    problems: list[Problem] = []
    last = len(items) - 1
    for index, source in enumerate(items):
        if not source.strip() and index == last:
            continue  # `[]`, a trailing comma, or a cut right after a comma
        read = _read_item(index, source, known)
        if isinstance(read, ParsedEntity):
            entities.append(read)
        elif closed or index != last:
            problems.append(read)
        else:
            problems.append(
                Problem(
                    ProblemKind.TRUNCATED,
                    f"the reply ends inside item {index}",
                    index,
                    source.strip(),
                )
            )
    if not closed and not any(p.kind is ProblemKind.TRUNCATED for p in problems):
        problems.append(
            Problem(ProblemKind.TRUNCATED, f"the list is not closed after {len(entities)} entities")
        )
    return ParseResult(tuple(entities), tuple(problems))

"""The readers' contract: events, the read report, label checks and ``read_instances``.

Each format module (``conll``, ``cluener``, ``spanjsonl``, ``parquet``) turns one file
into a stream of *events*, in file order and in constant memory:

- ``Instance``: a validated sentence;
- ``Repaired``: the *next* Instance was read with a repair (e.g. an orphan ``I-`` tag);
- ``Quarantined``: an input that could not become an Instance, with where and why.

``read_instances`` is the one entry point: it picks the format (by content, then by
file extension), counts every event in a ``ReadReport``, hands quarantined inputs to a
sink (e.g. ``writers.QuarantineWriter``) and yields only Instances. With
``strict=True`` the first Quarantined or Repaired event raises ``InputError``
(``file:line: what is wrong``) instead. Nothing is dropped silently: every input line
ends as an Instance (possibly repaired) or as a Quarantined record.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from parallelner.errors import ConfigError, InputError
from parallelner.reasons import Reason
from parallelner.records import Entity, Instance

__all__ = [
    "FORMATS",
    "Quarantined",
    "Repaired",
    "ReadEvent",
    "ReadReport",
    "Source",
    "read_instances",
    "read_events",
    "detect_format",
    "label_set",
    "iter_lines",
    "check_not_utf16",
    "instance_line",
    "iter_json_lines",
    "BadRecord",
    "is_int",
    "record_text",
    "check_instance_parts",
    "MAX_SENTENCE_CHARS",
]

FORMATS = ("conll", "wikineural", "cluener", "jsonl", "parquet")

# Longer "sentences" are quarantined, never sent to the LLM: a whole document pasted into
# one line would cost thousands of tokens and cannot fit the translation's max_tokens.
MAX_SENTENCE_CHARS = 5_000
_RAW_KEPT = 2_000  # characters of a too-long input kept in its quarantine record


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Quarantined(_Frozen):
    """One input that could not become an Instance: where it is, why, and its raw text."""

    path: str
    line: int | None  # 1-based line (row for Parquet); None when the whole file is at fault
    reason: Reason
    detail: str
    raw: str = ""

    @property
    def where(self) -> str:
        """``path:line`` (or just the path)."""
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def to_error(self) -> InputError:
        """The strict-mode exception for this input."""
        return InputError(self.path, self.line, self.reason, self.detail)


class Repaired(_Frozen):
    """A repair applied to the Instance that follows this event in the stream."""

    path: str
    line: int | None
    reason: Reason
    detail: str

    @property
    def where(self) -> str:
        """``path:line`` (or just the path)."""
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def to_error(self) -> InputError:
        """The strict-mode exception for this repair (strict mode repairs nothing)."""
        return InputError(self.path, self.line, self.reason, self.detail)


ReadEvent = Instance | Quarantined | Repaired


@dataclass
class ReadReport:
    """Counts of one read: sentences, entities per label, repairs and quarantine by reason.

    Keeps the first ``max_examples`` quarantined inputs and repairs of each reason, so a
    summary can point at ``file:line`` without holding the whole file.
    """

    path: str = ""
    format: str = ""
    max_examples: int = 3
    sentences: int = 0
    entities: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    repaired_examples: list[Repaired] = field(default_factory=list)
    quarantined_examples: list[Quarantined] = field(default_factory=list)

    def add(self, event: ReadEvent) -> None:
        """Count one event."""
        if isinstance(event, Instance):
            self.sentences += 1
            self.entities.update(e.label for e in event.entities)
        elif isinstance(event, Repaired):
            self.repaired[event.reason.value] += 1
            if self.repaired[event.reason.value] <= self.max_examples:
                self.repaired_examples.append(event)
        else:
            self.quarantined[event.reason.value] += 1
            if self.quarantined[event.reason.value] <= self.max_examples:
                self.quarantined_examples.append(event)

    @property
    def entity_total(self) -> int:
        """All entities of the Instances read."""
        return sum(self.entities.values())

    @property
    def quarantined_total(self) -> int:
        """All quarantined inputs."""
        return sum(self.quarantined.values())

    @property
    def repaired_total(self) -> int:
        """All repairs."""
        return sum(self.repaired.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able summary (stable key order; labels and reasons sorted)."""
        return {
            "path": self.path,
            "format": self.format,
            "sentences": self.sentences,
            "entities": self.entity_total,
            "entities_by_label": dict(sorted(self.entities.items())),
            "repaired": self.repaired_total,
            "repaired_by_reason": dict(sorted(self.repaired.items())),
            "quarantined": self.quarantined_total,
            "quarantined_by_reason": dict(sorted(self.quarantined.items())),
            "repaired_examples": [
                {"line": r.line, "reason": r.reason.value, "detail": r.detail, "where": r.where}
                for r in self.repaired_examples
            ],
            "quarantined_examples": [
                {"line": q.line, "reason": q.reason.value, "detail": q.detail, "where": q.where}
                for q in self.quarantined_examples
            ],
        }


def label_set(dataset: str | None) -> frozenset[str]:
    """Labels allowed for ``dataset``: its label map's keys, or ontology class names if None.

    Raises ConfigError for a dataset that has no label map.
    """
    if not dataset:
        from schemas.ontology import ontology_classes

        return frozenset(ontology_classes())
    from schemas.label_maps import label_map_for

    try:
        return frozenset(label_map_for(dataset))
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None


@dataclass
class Source:
    """What a format parser needs to know about the file it reads."""

    path: Path
    lang: str | None
    dataset: str | None
    _labels: dict[str, frozenset[str]] = field(default_factory=dict)
    max_chars: int = MAX_SENTENCE_CHARS

    @property
    def name(self) -> str:
        """The path as shown in messages."""
        return str(self.path)

    @property
    def stem(self) -> str:
        """File name without its extension, for instance ids."""
        return self.path.stem  # only the last suffix: a.train.json and a.dev.json differ

    def labels(self, dataset: str | None = None) -> frozenset[str]:
        """Allowed labels of ``dataset`` (default: this source's dataset), cached."""
        key = dataset if dataset is not None else (self.dataset or "")
        if key not in self._labels:
            self._labels[key] = label_set(key)
        return self._labels[key]

    def quarantine(
        self, line: int | None, reason: Reason, detail: str, raw: str = ""
    ) -> Quarantined:
        """A Quarantined event for this file."""
        if reason is Reason.SENTENCE_TOO_LONG and len(raw) > _RAW_KEPT:
            raw = f"{raw[:_RAW_KEPT]}... [{len(raw)} characters in all]"
        return Quarantined(path=self.name, line=line, reason=reason, detail=detail, raw=raw)

    def repaired(self, line: int | None, reason: Reason, detail: str) -> Repaired:
        """A Repaired event for this file."""
        return Repaired(path=self.name, line=line, reason=reason, detail=detail)


def iter_lines(path: Path) -> Iterator[tuple[int, str | None, bytes]]:
    """Yield ``(line number, text or None if not UTF-8, raw bytes)``, line ends removed.

    Reads in binary so one bad byte spoils one line, not the file. A UTF-8 byte-order
    mark at the start is dropped.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, generator owns it
    except OSError as exc:
        raise InputError(
            str(path), None, Reason.UNREADABLE_FILE, f"cannot read: {exc.strerror}"
        ) from None
    with fh:
        check_not_utf16(path, fh.peek(4)[:4])
        for lineno, raw in enumerate(fh, start=1):
            raw = raw.rstrip(b"\r\n")
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield lineno, raw.decode("utf-8"), raw
            except UnicodeDecodeError:
                yield lineno, None, raw


_WIDE_BOMS = (  # UTF-32 first: its little-endian mark begins with UTF-16's
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def check_not_utf16(path: Path | str, head: bytes) -> None:
    """Raise InputError when ``head`` (a file's first bytes) is a UTF-16 or UTF-32
    byte-order mark: every line would be "invalid UTF-8", so the file is named once."""
    for bom, name in _WIDE_BOMS:
        if head.startswith(bom):
            raise InputError(
                str(path), None, Reason.INVALID_UTF8,
                f"the file is {name} (a byte-order mark {bom.hex(' ')} at its start), not "
                f"UTF-8; save it as UTF-8 (e.g. iconv -f {name} -t UTF-8) and run again",
            )  # fmt: skip


def instance_line(path: Path | str, instance_id: str) -> int | None:
    """The line of a JSON-lines file that holds the instance ``instance_id`` (None: not a
    JSON-lines file, or not found), for a message about an instance read earlier.

    Instances do not carry their line (a shard's content is its hash); this reads the
    file again, for one message, and only decodes lines that contain the id.
    """
    for lineno, line, _ in iter_lines(Path(path)):
        if line is None or not line.lstrip().startswith("{"):
            continue
        if instance_id.endswith(f"-{lineno}"):  # an id the reader made from the line
            return lineno
        if instance_id not in line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("id") == instance_id:
            return lineno
    return None


def invalid_utf8_detail(raw: bytes) -> str:
    """Describe where a line stops being UTF-8."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line)"
    return "invalid UTF-8"


class BadRecord(Exception):
    """A decoded record that cannot become an Instance (reason + detail)."""

    def __init__(self, reason: Reason, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def is_int(v: object) -> bool:
    """True for a JSON integer (``bool`` is not one)."""
    return isinstance(v, int) and not isinstance(v, bool)


def record_text(obj: object) -> tuple[dict[str, Any], str]:
    """``(obj, its non-empty text)`` for a decoded JSON object; raises BadRecord otherwise."""
    if not isinstance(obj, dict):
        raise BadRecord(
            Reason.MALFORMED_LINE, f"expected a JSON object, found {type(obj).__name__}"
        )
    text = obj.get("text")
    if not isinstance(text, str):
        raise BadRecord(Reason.MALFORMED_LINE, 'missing or non-string "text"')
    if not text.strip():
        raise BadRecord(Reason.EMPTY_SENTENCE, 'empty sentence: "text" is empty')
    return obj, text


def check_instance_parts(
    source: Source, lang: str | None, text: str, entities: Iterable[Entity]
) -> None:
    """Raise BadRecord for what no reader may let through, whatever its format.

    An unknown language, a text longer than ``source.max_chars``, or two entities that
    share characters (overlapping or nested spans: one span per character is the
    contract of every stage after reading). ``lang`` None: the file's language, checked once
    by the caller.
    """
    from parallelner.languages import unknown_language

    problem = unknown_language(lang) if lang is not None else None
    if problem is not None:
        raise BadRecord(Reason.UNKNOWN_LANGUAGE, problem)
    if len(text) > source.max_chars:
        raise BadRecord(
            Reason.SENTENCE_TOO_LONG,
            f"the sentence has {len(text)} characters, more than the cap of {source.max_chars}",
        )
    ordered = sorted(entities, key=lambda e: (e.start, e.end))
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.start < a.end:
            kind = (
                "is nested in"
                if b.end <= a.end
                else "contains"
                if b.start == a.start
                else "overlaps"
            )
            raise BadRecord(
                Reason.OVERLAPPING_ENTITIES,
                f"entity {b.label} {b.text!r} [{b.start}, {b.end}) {kind} "
                f"{a.label} {a.text!r} [{a.start}, {a.end})",
            )


def iter_json_lines(source: Source) -> Iterator[tuple[int, str, Any] | Quarantined]:
    """Yield ``(line number, line, decoded JSON)`` per non-blank line of a JSON-lines file.

    A line that is not UTF-8 or not JSON comes out as a Quarantined event instead.
    """
    for lineno, line, raw in iter_lines(source.path):
        if line is None:
            yield source.quarantine(
                lineno,
                Reason.INVALID_UTF8,
                invalid_utf8_detail(raw),
                raw.decode("utf-8", errors="backslashreplace"),
            )
            continue
        if not line.strip():
            continue
        try:
            yield lineno, line, json.loads(line)
        except json.JSONDecodeError as exc:
            yield source.quarantine(
                lineno, Reason.INVALID_JSON, f"invalid JSON ({exc.msg}, column {exc.colno})", line
            )


_EXTENSIONS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".conllu": "wikineural",
    ".conll": "conll",
    ".iob": "conll",
    ".bio": "conll",
    ".jsonl": "jsonl",
    ".json": "cluener",
}


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path``: Parquet magic, then the first data line, then the extension.

    A ``.parquet`` / ``.pq`` name without the magic is still read as Parquet, so that the
    error says the file is not readable Parquet rather than quarantining its lines.

    A JSON line with ``label`` is CLUENER, with ``entities`` span JSONL; a tab-separated
    ``index<TAB>token<TAB>tag`` line is WikiNEuRal; other column lines are CoNLL.
    Raises InputError when the file cannot be read, ConfigError when nothing tells.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if fh.read(4) == b"PAR1":
                return "parquet"
    except OSError as exc:
        raise InputError(
            str(path), None, Reason.UNREADABLE_FILE, f"cannot read: {exc.strerror}"
        ) from None
    if _EXTENSIONS.get(path.suffix.lower()) == "parquet":
        return "parquet"  # named Parquet but no magic: the Parquet reader says what is wrong
    for n, (_, text, _) in enumerate(iter_lines(path)):
        if n > 200:
            break
        if text is None or not text.strip() or text.startswith("#") or "-DOCSTART-" in text:
            continue
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                obj = json.loads(stripped)
            except json.JSONDecodeError:
                break
            if isinstance(obj, dict) and "entities" in obj:
                return "jsonl"
            if isinstance(obj, dict) and ("label" in obj or "text" in obj):
                return "cluener"
            break
        cols = text.split("\t")
        if len(cols) == 3 and cols[0].strip().isdigit():
            return "wikineural"
        return "conll"
    ext = path.suffix.lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    raise ConfigError(f"{path}: cannot tell the format; pass --format ({'|'.join(FORMATS)})")


def _parser(fmt: str) -> Callable[..., Iterator[ReadEvent]]:
    if fmt in ("conll", "wikineural"):
        from parallelner.readers import conll

        return conll.read_wikineural if fmt == "wikineural" else conll.read_conll
    if fmt == "cluener":
        from parallelner.readers.cluener import read_cluener

        return read_cluener
    if fmt == "jsonl":
        from parallelner.readers.spanjsonl import read_span_jsonl

        return read_span_jsonl
    if fmt == "parquet":
        from parallelner.readers.parquet import read_parquet

        return read_parquet
    raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def read_events(
    path: str | Path,
    format: str | None = None,  # noqa: A002 - the user-facing name
    *,
    lang: str | None = None,
    dataset: str | None = None,
    max_chars: int = MAX_SENTENCE_CHARS,
    **opts: Any,
) -> Iterator[ReadEvent]:
    """Stream the events (Instance / Repaired / Quarantined) of one file, in file order."""
    path = Path(path)
    if path.is_dir():
        raise InputError(str(path), None, Reason.UNREADABLE_FILE, "is a directory, not a file")
    fmt = format or detect_format(path)
    parse = _parser(fmt)
    source = Source(path=path, lang=lang, dataset=dataset, max_chars=max_chars)
    if dataset:
        source.labels()  # unknown dataset: a ConfigError now, not one per line
    return parse(source, **opts)


def read_instances(
    path: str | Path,
    format: str | None = None,  # noqa: A002 - the user-facing name
    strict: bool = False,
    *,
    report: ReadReport | None = None,
    quarantine: Callable[[Quarantined], Any] | None = None,
    lang: str | None = None,
    dataset: str | None = None,
    **opts: Any,
) -> Iterator[Instance]:
    """Yield the validated Instances of ``path``, streaming, in file order.

    - ``format``: one of ``FORMATS``; None detects it (``detect_format``).
    - ``strict``: raise ``InputError`` (``file:line: fault``) at the first bad or repaired
      input instead of quarantining / repairing it.
    - ``report``: a ``ReadReport`` to fill with counts (pass one to get them).
    - ``quarantine``: called with every Quarantined input (e.g. ``QuarantineWriter.write``).
    - ``lang`` / ``dataset``: language and label-map name when the file does not say
      (defaults: conll/wikineural ``en``, cluener ``zh``; datasets ``conll``,
      ``wikineural``, ``cluener``; jsonl/parquet take them from each record).
    - ``opts``: format options, e.g. ``token_col``, ``tag_col``, ``scheme`` for CoNLL.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(str(path), None, Reason.UNREADABLE_FILE, "is a directory, not a file")
    fmt = format or detect_format(path)
    if report is not None:
        report.path = report.path or str(path)
        report.format = fmt
    for event in read_events(path, fmt, lang=lang, dataset=dataset, **opts):
        if isinstance(event, Instance):
            if report is not None:
                report.add(event)
            yield event
            continue
        if strict:
            raise event.to_error()
        if report is not None:
            report.add(event)
        if isinstance(event, Quarantined) and quarantine is not None:
            quarantine(event)

"""CoNLL-style column files (CoNLL-2003, WikiNEuRal ``.conllu``) -> Instances.

One token a line, sentences separated by blank lines; columns split on tabs (or on
whitespace when a line has no tab). The token and tag columns are configurable
(``token_col``, ``tag_col``; negative counts from the end). ``-DOCSTART-`` lines are
document boundaries; a line starting with ``#`` whose tag column is not a tag is a
comment. Tagging schemes: ``iob2`` (BIO, default), ``iob1`` and ``bioes``.

Reading follows conlleval: an ``I-X`` after ``O`` or after another type starts a new
entity, reported as a *repair* (``orphan_inside_tag``) under IOB2/BIOES; a BIOES entity
not ended by ``E-`` is closed where the next tag says so (``unclosed_entity``). Any
other fault (too few columns, empty token, unknown tag or label, bad UTF-8) quarantines
the whole sentence at the line of its first fault.

Instance ids are ``<dataset>-<file stem>-<n>``, ``n`` the 1-based sentence number in
the file (quarantined sentences count too, so ids never shift).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from parallelner.detok import tokens_to_text
from parallelner.readers.base import (
    BadRecord,
    ReadEvent,
    Source,
    check_instance_parts,
    invalid_utf8_detail,
    iter_lines,
)
from parallelner.reasons import Reason
from parallelner.records import Entity, Instance

__all__ = ["read_conll", "read_wikineural", "SCHEMES", "decode_tags"]

SCHEMES = {"iob2": "BI", "bio": "BI", "iob1": "BI", "bioes": "BIES", "iobes": "BIES"}
_TAG = re.compile(r"^([A-Z])-(.+)$")


@dataclass
class _Block:
    first_line: int = 0
    tokens: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    empty: list[int] = field(default_factory=list)  # lines with an empty token
    fault: tuple[int, Reason, str] | None = None

    def fail(self, line: int, reason: Reason, detail: str) -> None:
        if self.fault is None:
            self.fault = (line, reason, detail)


def _is_tag(value: str) -> bool:
    return value == "O" or _TAG.match(value) is not None


def decode_tags(
    tags: list[str], scheme: str = "iob2"
) -> tuple[list[tuple[int, int, str]], list[tuple[int, Reason, str]]]:
    """Tags -> entity chunks ``(first token, last token inclusive, type)`` and repairs.

    Tags must already be valid for the scheme (``O`` or ``<prefix>-<type>``). Repairs are
    ``(token index, reason, detail)``.
    """
    chunks: list[tuple[int, int, str]] = []
    repairs: list[tuple[int, Reason, str]] = []
    bioes = SCHEMES[scheme] == "BIES"
    iob1 = scheme == "iob1"
    start: int | None = None
    typ = ""

    def close(end: int) -> None:
        nonlocal start
        if start is not None:
            chunks.append((start, end, typ))
            start = None

    def unclosed(i: int, prev: str, tag: str) -> None:
        # BIOES: the open entity should have ended with E-; close it and say so
        if bioes and start is not None:
            repairs.append(
                (
                    i,
                    Reason.UNCLOSED_ENTITY,
                    f"{prev} is followed by {tag}, not E-{typ}; entity closed",
                )
            )

    for i, tag in enumerate(tags):
        prev = tags[i - 1] if i else "O"
        if tag == "O":
            unclosed(i, prev, tag)
            close(i - 1)
            continue
        prefix, label = tag[0], tag[2:]
        continuing = start is not None and typ == label
        if prefix == "B" or prefix == "S":
            unclosed(i, prev, tag)
            close(i - 1)
            start, typ = i, label
            if prefix == "S":
                close(i)
        elif prefix in ("I", "E"):
            if not continuing:
                if not iob1:
                    repairs.append(
                        (
                            i,
                            Reason.ORPHAN_INSIDE_TAG,
                            f"{tag} follows {prev}, not B-{label}; read as the start of a new entity",
                        )
                    )
                unclosed(i, prev, tag)
                close(i - 1)
                start, typ = i, label
            if prefix == "E":
                close(i)
    if start is not None:
        if bioes:
            repairs.append(
                (
                    len(tags) - 1,
                    Reason.UNCLOSED_ENTITY,
                    f"sentence ends inside {typ} entity without E-{typ}; entity closed",
                )
            )
        close(len(tags) - 1)
    return chunks, repairs


def read_conll(
    source: Source,
    *,
    token_col: int = 0,
    tag_col: int = -1,
    index_col: int | None = None,
    scheme: str = "iob2",
) -> Iterator[ReadEvent]:
    """Stream the events of a CoNLL column file (see the module docstring)."""
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        from parallelner.errors import ConfigError

        raise ConfigError(f"unknown tagging scheme {scheme!r}; choose one of iob1, iob2, bioes")
    prefixes = SCHEMES[scheme]
    lang = source.lang or "en"
    dataset = source.dataset or "conll"
    labels = source.labels(dataset)
    need = max(c + 1 if c >= 0 else -c for c in (token_col, tag_col, index_col or 0))
    need = max(need, 2)
    sentence_no = 0
    block = _Block()

    def finish(b: _Block) -> Iterator[ReadEvent]:
        nonlocal sentence_no
        if not b.raw:
            return
        if not b.tokens and not b.empty and b.fault is None:
            return  # comment lines only: no sentence here
        sentence_no += 1
        raw = "\n".join(b.raw)
        if b.empty and (b.fault is None or b.empty[0] < b.fault[0]):
            if b.tokens:
                b.fault = (b.empty[0], Reason.MALFORMED_LINE, "empty token")
            else:
                b.fault = (
                    b.empty[0],
                    Reason.EMPTY_SENTENCE,
                    "empty sentence: every token is empty",
                )
        if b.fault is not None:
            line, reason, detail = b.fault
            yield source.quarantine(line, reason, detail, raw)
            return
        chunks, repairs = decode_tags(b.tags, scheme)
        detok = tokens_to_text(b.tokens, lang)
        entities = []
        for first, last, label in chunks:
            s, e = detok.char_span(first, last)
            entities.append(Entity(start=s, end=e, label=label, text=detok.text[s:e]))
        try:  # tags cannot overlap; the length can be over the cap
            check_instance_parts(source, None, detok.text, entities)
        except BadRecord as bad:
            yield source.quarantine(b.first_line, bad.reason, bad.detail, raw)
            return
        for tok_i, reason, detail in repairs:
            yield source.repaired(b.lines[tok_i], reason, detail)
        yield Instance(
            id=f"{dataset}-{source.stem}-{sentence_no}",
            lang=lang,
            text=detok.text,
            entities=tuple(entities),
            source_dataset=dataset,
        )

    for lineno, text, raw in iter_lines(source.path):
        if text is None:
            if not block.raw:
                block.first_line = lineno
            block.raw.append(raw.decode("utf-8", errors="backslashreplace"))
            block.fail(lineno, Reason.INVALID_UTF8, invalid_utf8_detail(raw))
            continue
        if not text.strip():
            yield from finish(block)
            block = _Block()
            continue
        parts = text.split("\t") if "\t" in text else text.split()
        if "-DOCSTART-" in parts[:2] or text.startswith("-DOCSTART-"):
            yield from finish(block)
            block = _Block()
            continue
        if text.startswith("#") and not (len(parts) >= need and _is_tag(parts[tag_col].strip())):
            if not block.raw:
                block.first_line = lineno
            block.raw.append(text)  # a comment: kept in the raw sentence, not a token
            continue
        if not block.raw:
            block.first_line = lineno
        block.raw.append(text)
        if len(parts) < need:
            block.fail(
                lineno,
                Reason.MALFORMED_LINE,
                f"expected at least {need} columns, found {len(parts)}: {text!r}",
            )
            continue
        token, tag = parts[token_col].strip(), parts[tag_col].strip()
        if index_col is not None and not parts[index_col].strip().isdigit():
            block.fail(
                lineno,
                Reason.MALFORMED_LINE,
                f"index column {index_col + 1} is not a number: {parts[index_col]!r}",
            )
            continue
        if not token:
            block.empty.append(lineno)
            continue
        m = _TAG.match(tag)
        if tag != "O" and (m is None or m.group(1) not in prefixes):
            block.fail(
                lineno,
                Reason.UNKNOWN_TAG,
                f"unknown tag {tag!r} for the {scheme.upper()} scheme (expected O or {'/'.join(prefixes)}-TYPE)",
            )
            continue
        if m is not None and m.group(2) not in labels:
            block.fail(
                lineno,
                Reason.UNKNOWN_LABEL,
                f"unknown label {m.group(2)!r} in tag {tag!r} for dataset {dataset!r} (known: {', '.join(sorted(labels))})",
            )
            continue
        block.tokens.append(token)
        block.tags.append(tag)
        block.lines.append(lineno)
    yield from finish(block)


def read_wikineural(source: Source, *, scheme: str = "iob2", **opts: int) -> Iterator[ReadEvent]:
    """Stream the events of a WikiNEuRal ``.conllu`` file (``index<TAB>token<TAB>tag``)."""
    if source.dataset is None:
        source.dataset = "wikineural"
    opts.setdefault("token_col", 1)
    opts.setdefault("tag_col", 2)
    opts.setdefault("index_col", 0)
    return read_conll(source, scheme=scheme, **opts)

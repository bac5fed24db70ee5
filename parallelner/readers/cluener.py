"""CLUENER2020 JSON lines -> Instances.

One object a line: ``{"text": ..., "label": {type: {mention: [[start, end], ...]}}}``
where ``end`` is INCLUSIVE (converted here to the project's exclusive end). A mention
may be listed with several spans (it repeats in the sentence); every span is checked
against the text. Lines without ``label`` (the test split) have no entities.

Instance ids are ``<dataset>-<file stem>-<line number>``; lang defaults to ``zh``.
"""

from __future__ import annotations

from collections.abc import Iterator

from parallelner.readers.base import (
    BadRecord,
    Quarantined,
    ReadEvent,
    Source,
    check_instance_parts,
    is_int,
    iter_json_lines,
    record_text,
)
from parallelner.reasons import Reason
from parallelner.records import Entity, Instance

__all__ = ["read_cluener", "parse_cluener_line"]


def parse_cluener_line(obj: object, labels: frozenset[str]) -> tuple[str, list[Entity]]:
    """One decoded CLUENER object -> (text, entities); raises ``BadRecord`` with reason and detail."""
    record, text = record_text(obj)
    label = record.get("label", {})
    if label is None:
        label = {}
    if not isinstance(label, dict):
        raise BadRecord(
            Reason.MALFORMED_LINE,
            '"label" must be an object: type -> mention -> list of (start, end) pairs',
        )
    entities = []
    for typ, mentions in label.items():
        if typ not in labels:
            raise BadRecord(
                Reason.UNKNOWN_LABEL, f"unknown label {typ!r} (known: {', '.join(sorted(labels))})"
            )
        if not isinstance(mentions, dict):
            raise BadRecord(
                Reason.MALFORMED_LINE,
                f'"label.{typ}" must be an object: mention -> list of (start, end) pairs',
            )
        for mention, spans in mentions.items():
            if not isinstance(spans, list) or not all(
                isinstance(sp, list) and len(sp) == 2 and is_int(sp[0]) and is_int(sp[1])
                for sp in spans
            ):
                raise BadRecord(
                    Reason.MALFORMED_LINE,
                    f"spans of {typ} {mention!r} must be a list of (start, end) integer pairs",
                )
            for start, end in spans:
                if start < 0 or end < start or end >= len(text):
                    raise BadRecord(
                        Reason.OFFSET_OUT_OF_RANGE,
                        f"{typ} {mention!r} span [{start}, {end}] (end inclusive) is outside the text (length {len(text)})",
                    )
                if text[start : end + 1] != mention:
                    raise BadRecord(
                        Reason.MENTION_MISMATCH,
                        f"{typ} {mention!r} span [{start}, {end}] reads {text[start : end + 1]!r} in the text",
                    )
                entities.append(Entity(start=start, end=end + 1, label=typ, text=mention))
    return text, entities


def read_cluener(source: Source) -> Iterator[ReadEvent]:
    """Stream the events of a CLUENER2020 JSON-lines file."""
    lang = source.lang or "zh"
    dataset = source.dataset or "cluener"
    labels = source.labels(dataset)
    for item in iter_json_lines(source):
        if isinstance(item, Quarantined):
            yield item
            continue
        lineno, line, obj = item
        try:
            text, entities = parse_cluener_line(obj, labels)
            check_instance_parts(source, None, text, entities)
        except BadRecord as bad:
            yield source.quarantine(lineno, bad.reason, bad.detail, line)
            continue
        yield Instance(
            id=f"{dataset}-{source.stem}-{lineno}",
            lang=lang,
            text=text,
            entities=tuple(entities),
            source_dataset=dataset,
        )

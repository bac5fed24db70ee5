"""ParallelRecord <-> Label Studio task, prediction and annotation (pure functions).

A task carries the record id in ``data.record_id``; its prediction holds the projected
target spans (offsets as Label Studio's <Text> tag counts them, see
``annotation.offsets``; the ontology class as label) with
``model_version = pipeline:<version>|prompt:<version>``. Back from Label Studio, one
annotation becomes a ``Vote``; ``decide`` combines the votes of several annotators and
``apply_review`` turns the outcome into the updated record.

Decision rule with several annotators (documented in docs/review.md): the majority of
Accept / Reject votes wins and a tie is a Reject; the spans, comment and review time
come from the latest annotation (by ``updated_at``) on the winning side; the reasons of
a rejection are the union of the winning voters' reasons.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from annotation.config import (
    ACCEPT,
    COMMENT,
    DECISION,
    LABELS,
    REASON,
    REJECT,
    REJECT_REASONS,
    TARGET,
    label_colour,
)
from annotation.offsets import resolve_span, to_label_studio
from parallelner.reasons import Reason, Status
from parallelner.records import ParallelRecord, ProjectedEntity, UnprojectedEntity
from parallelner.version import signature

__all__ = [
    "Vote",
    "Outcome",
    "class_of",
    "record_classes",
    "model_version",
    "record_to_task",
    "parse_annotation",
    "decide",
    "apply_review",
    "predicted_spans",
    "REVIEWABLE",
]

# Records a pull may update: still waiting, or already reviewed (the export wins).
REVIEWABLE = frozenset({Status.REVIEW, Status.REVIEWED_ACCEPTED, Status.REVIEWED_REJECTED})
_MANUAL = "manual"  # ProjectedEntity.method of a span drawn or changed by an annotator


def _label_map(dataset: str) -> dict[str, str]:
    from schemas.label_maps import label_map_for

    try:
        return label_map_for(dataset)
    except KeyError:
        return {}


def class_of(dataset: str, label: str) -> str:
    """Ontology class shown for a dataset label (the label itself if the map lacks it)."""
    return _label_map(dataset).get(label, label)


def _label_for(dataset: str, cls: str) -> str | None:
    """Dataset label for an ontology class (first in sorted order), or None."""
    mapping = _label_map(dataset)
    if not mapping:
        return cls
    found = sorted(label for label, c in mapping.items() if c == cls)
    return found[0] if found else None


def record_classes(records: Iterable[ParallelRecord]) -> set[str]:
    """Ontology classes of every label a record's dataset can use (the config's labels)."""
    out: set[str] = set()
    for r in records:
        mapping = _label_map(r.source_dataset)
        out.update(mapping.values())
        out.update(class_of(r.source_dataset, e.label) for e in r.src_entities)
        out.update(class_of(r.source_dataset, e.label) for e in r.tgt_entities)
    return out


def model_version(record: ParallelRecord) -> str:
    """The prediction's model_version: pipeline and prompt version of the record."""
    return signature(pipeline=record.pipeline_version, prompt=record.prompt_version)


def _source_html(record: ParallelRecord) -> str:
    parts: list[str] = []
    pos = 0
    text = record.src_text
    for e in record.src_entities:
        if e.start < pos:  # overlapping source entities: show the text once
            continue
        cls = class_of(record.source_dataset, e.label)
        parts.append(html.escape(text[pos : e.start]))
        parts.append(
            f'<mark style="background:{label_colour(cls)}">{html.escape(e.text)}'
            f"<sub>{html.escape(cls)}</sub></mark>"
        )
        pos = e.end
    parts.append(html.escape(text[pos:]))
    return f'<div class="pn-src-text" lang="{html.escape(record.src_lang)}">{"".join(parts)}</div>'


def _entity_doubts(record: ParallelRecord) -> str:
    """The entities stage 3 doubted, for the reviewer: what each span read back as."""
    notes = []
    for e in record.tgt_entities:
        if not e.checks or not 0 <= e.source_index < len(record.src_entities):
            continue
        src = record.src_entities[e.source_index].text
        said = f" reads back as “{e.back_translation}”" if e.back_translation else ""
        codes = ", ".join(str(c) for c in e.checks)
        notes.append(f"“{e.text}” (for “{src}”){said}: {codes}")
    return "; ".join(notes)


def record_to_task(record: ParallelRecord) -> dict[str, Any]:
    """The Label Studio task (data + one prediction) for a record in review."""
    tgt = record.tgt_text or ""
    why = ", ".join(str(r) for r in record.reasons) or "review"
    doubts = _entity_doubts(record)
    if doubts:
        why = f"{why}. {doubts}"
    result = []
    for e in record.tgt_entities:
        result.append(
            {
                "id": f"s{e.source_index}-{e.start}",
                "from_name": LABELS,
                "to_name": TARGET,
                "type": "labels",
                "origin": "prediction",
                "value": {
                    "start": to_label_studio(tgt, e.start),
                    "end": to_label_studio(tgt, e.end),
                    "text": e.text,
                    "labels": [class_of(record.source_dataset, e.label)],
                },
                "score": e.score,
            }
        )
    scores = [e.score for e in record.tgt_entities]
    return {
        "data": {
            "record_id": record.record_id,
            "source_dataset": record.source_dataset,
            "src_lang": record.src_lang,
            "tgt_lang": record.tgt_lang,
            "src_text": record.src_text,
            "src_html": _source_html(record),
            "tgt_text": tgt,
            "why": why,
            "pushed_spans": [
                [e.start, e.end, class_of(record.source_dataset, e.label)]
                for e in record.tgt_entities
            ],
        },
        "predictions": [
            {
                "model_version": model_version(record),
                "score": min(scores) if scores else 0.0,
                "result": result,
            }
        ],
    }


@dataclass(frozen=True)
class Span:
    """A target span from an annotation, already in code points."""

    start: int
    end: int
    cls: str
    region_id: str


@dataclass(frozen=True)
class Vote:
    """One annotator's finished annotation of one task."""

    annotator: str
    decision: str | None  # ACCEPT | REJECT | None (missing)
    reasons: tuple[Reason, ...]
    comment: str | None
    spans: tuple[Span, ...]
    updated_at: datetime
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What the votes on one task decide."""

    decision: str  # ACCEPT | REJECT
    deciding: Vote
    voters: tuple[Vote, ...]
    agreement: float  # share of votes that agree with the decision
    reasons: tuple[Reason, ...] = field(default=())
    span_agreement: float | None = None  # mean pairwise Jaccard of accepting voters' spans


def _annotator(ann: Mapping[str, Any], users: Mapping[int, str]) -> str:
    who = ann.get("completed_by")
    if isinstance(who, Mapping):  # some exports inline the user
        return str(who.get("email") or users.get(who.get("id"), f"user:{who.get('id')}"))
    if who is None:
        return "unknown"
    return users.get(int(who), f"user:{who}")


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str) and value:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        return datetime(1970, 1, 1, tzinfo=UTC)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def parse_annotation(
    ann: Mapping[str, Any],
    tgt_text: str,
    known: set[str],
    users: Mapping[int, str] | None = None,
) -> Vote:
    """One exported annotation -> Vote; offsets converted and checked (problems listed).

    ``users`` maps Label Studio user ids to e-mails (the export gives ids only).
    """
    decision = None
    reasons: list[Reason] = []
    comment = None
    spans: list[Span] = []
    problems: list[str] = []
    for item in ann.get("result") or []:
        name = item.get("from_name")
        value = item.get("value") or {}
        if name == DECISION:
            choices = value.get("choices") or []
            decision = choices[0] if choices else None
        elif name == REASON:
            for c in value.get("choices") or []:
                if c in REJECT_REASONS:
                    reasons.append(Reason(REJECT_REASONS[c]))
                else:
                    problems.append(f"unknown rejection reason {c!r}")
        elif name == COMMENT:
            text = value.get("text")
            text = "\n".join(text) if isinstance(text, list) else text
            comment = (text or "").strip() or None
        elif name == LABELS:
            span, problem = _span(item, tgt_text, known)
            if problem:
                problems.append(problem)
            else:
                spans.append(span)
    if decision not in (ACCEPT, REJECT):
        problems.append(f"no Accept/Reject decision (got {decision!r})")
        decision = None
    return Vote(
        annotator=_annotator(ann, users or {}),
        decision=decision,
        reasons=tuple(dict.fromkeys(reasons)),
        comment=comment,
        spans=tuple(sorted(spans, key=lambda s: (s.start, s.end, s.cls))),
        updated_at=_time(ann.get("updated_at") or ann.get("created_at")),
        problems=tuple(problems),
    )


def _span(item: Mapping[str, Any], text: str, known: set[str]) -> tuple[Span | None, str | None]:
    value = item.get("value") or {}
    labels = value.get("labels") or []
    try:
        start, end = resolve_span(text, int(value["start"]), int(value["end"]), value.get("text"))
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"span {value.get('start')}-{value.get('end')}: {exc}"
    if len(labels) != 1 or labels[0] not in known:
        return None, f"span {start}-{end} has label {labels!r}, not one known class"
    return Span(start, end, labels[0], str(item.get("id", ""))), None


def decide(votes: Sequence[Vote]) -> Outcome | None:
    """Combine valid votes: majority wins, a tie rejects; None when no valid vote."""
    valid = [v for v in votes if v.decision is not None and not v.problems]
    if not valid:
        return None
    accepts = sum(v.decision == ACCEPT for v in valid)
    decision = ACCEPT if accepts > len(valid) - accepts else REJECT
    winners = [v for v in valid if v.decision == decision]
    deciding = max(winners, key=lambda v: (v.updated_at, v.annotator))
    reasons: tuple[Reason, ...] = ()
    if decision == REJECT:
        reasons = tuple(dict.fromkeys(r for v in winners for r in v.reasons)) or (
            Reason.REVIEW_OTHER,
        )
    return Outcome(
        decision=decision,
        deciding=deciding,
        voters=tuple(valid),
        agreement=len(winners) / len(valid),
        reasons=reasons,
        span_agreement=_span_agreement([v for v in valid if v.decision == ACCEPT]),
    )


def _span_agreement(votes: Sequence[Vote]) -> float | None:
    """Mean pairwise Jaccard overlap of (start, end, class) sets; None below two votes."""
    sets = [{(s.start, s.end, s.cls) for s in v.spans} for v in votes]
    pairs = [(a, b) for i, a in enumerate(sets) for b in sets[i + 1 :]]
    if not pairs:
        return None
    return sum(len(a & b) / len(a | b) if a | b else 1.0 for a, b in pairs) / len(pairs)


def _source_index(span: Span, record: ParallelRecord, taken: set[int]) -> int:
    """Which source entity a span stands for (-1: one the annotator added)."""
    head = span.region_id[1:].split("-", 1)[0] if span.region_id.startswith("s") else ""
    if head.isdigit() and int(head) < len(record.src_entities) and int(head) not in taken:
        return int(head)
    for u in record.unprojected:  # a span drawn for an entity the projection missed
        if u.source_index not in taken and class_of(record.source_dataset, u.label) == span.cls:
            return u.source_index
    return -1


def predicted_spans(task: Mapping[str, Any]) -> set[tuple[int, int, str]]:
    """(start, end, class) in code points of the spans pushed with a task.

    Read from ``data.pushed_spans`` (written by ``record_to_task``): the JSON export
    of Label Studio lists a task's predictions by id only.
    """
    spans = (task.get("data") or {}).get("pushed_spans") or []
    return {(int(s), int(e), str(c)) for s, e, c in spans}


def apply_review(
    record: ParallelRecord, outcome: Outcome, predicted: set[tuple[int, int, str]]
) -> tuple[ParallelRecord, list[str]]:
    """The record after review, and problems that keep it in review (then unchanged).

    ``predicted`` are the spans that were pushed (from the task's prediction): an
    accepted annotation whose spans differ gets the ``review_corrected`` reason.
    """
    problems: list[str] = []
    tgt = record.tgt_text or ""
    deciding = outcome.deciding
    # after a review, ``reasons`` say what the review decided; the automatic ones stay
    # as history in ``auto_reasons`` (kept from the first review: a re-review replaces
    # only the review's reasons; rows reviewed before auto_reasons existed drop review_*)
    auto = record.auto_reasons
    if auto is None:
        auto = tuple(r for r in record.reasons if not r.value.startswith("review_"))
    if outcome.decision == REJECT:
        update = {
            "status": Status.REVIEWED_REJECTED,
            "reasons": outcome.reasons,
            "auto_reasons": auto,
        }
    else:
        old = {
            (e.start, e.end, class_of(record.source_dataset, e.label)): e
            for e in record.tgt_entities
        }
        entities: list[ProjectedEntity] = []
        taken: set[int] = set()
        for span in deciding.spans:
            kept = old.get((span.start, span.end, span.cls))
            if kept is not None:
                entities.append(kept)
                taken.add(kept.source_index)
                continue
            label = _label_for(record.source_dataset, span.cls)
            if label is None:
                problems.append(
                    f"class {span.cls!r} has no label in dataset {record.source_dataset!r}"
                )
                continue
            idx = _source_index(span, record, taken)
            if idx >= 0:
                taken.add(idx)
                src = record.src_entities[idx]
                if class_of(record.source_dataset, src.label) == span.cls:
                    label = src.label
            entities.append(
                ProjectedEntity(
                    start=span.start,
                    end=span.end,
                    label=label,
                    text=tgt[span.start : span.end],
                    source_index=idx,
                    method=_MANUAL,
                    score=1.0,
                )
            )
        corrected = {(s.start, s.end, s.cls) for s in deciding.spans} != predicted
        projected = {e.source_index for e in entities}
        kept_out = {u.source_index: u for u in record.unprojected}
        # every source entity without a span stays listed, the annotator's removals too
        unprojected = tuple(
            kept_out.get(i)
            or UnprojectedEntity(
                source_index=i, label=e.label, text=e.text, reason=Reason.REVIEW_CORRECTED
            )
            for i, e in enumerate(record.src_entities)
            if i not in projected
        )
        update = {
            "status": Status.REVIEWED_ACCEPTED,
            "tgt_entities": tuple(entities),
            "unprojected": unprojected,
            "reasons": (Reason.REVIEW_ACCEPTED,)
            + ((Reason.REVIEW_CORRECTED,) if corrected else ()),
            "auto_reasons": auto,
        }
    if problems:
        return record, problems
    annotators = sorted({v.annotator for v in outcome.voters})
    update |= {
        "annotator": ",".join(annotators),
        "reviewed_at": deciding.updated_at,
        "review_comment": deciding.comment,
    }
    return record.model_copy(update=update), []

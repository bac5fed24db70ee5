"""Routing: accepted, rejected or review, from the reasons the checks found.

Three layers, as in every stage: ``decide`` (reasons -> status), ``assess_record`` (one
record), ``assess_stream`` (an iterator of records, with the run's duplicate set).

Rules, in order:

1. ``failed`` records (stage 1 could not translate) and records a person already
   reviewed (``reviewed_accepted`` / ``reviewed_rejected``) are returned unchanged.
2. Any reason in ``REJECT_REASONS`` -> ``rejected``.
3. Else any reason in ``REVIEW_REASONS`` (borderline back-translation, entities the
   repair ladder could not place, changed labels, low projection scores, every entity
   verification reason, and the ``CARRIED_REASONS`` that stages 1-2 put on the record:
   an extra entity in the reply, no back-translation) -> ``review``.
4. Else ``accepted``, except a seeded random audit sample (``quality.audit_rate``,
   default 2%) -> ``review`` with ``audit_sample``. The draw hashes the seed and the
   record id, so a rerun picks the same records whatever the order or sharding.

Reasons from earlier stages stay on the record; stage-3 reasons are recomputed, so
assessing a record twice gives the same result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from parallelner.quality.checks import check_duplicate, text_checks
from parallelner.quality.entities import (
    ENTITY_REASONS,
    check_entity_verification,
    check_script_variant,
    check_unexpected_names,
    verify_entities,
)
from parallelner.reasons import Reason, Status
from parallelner.records import ParallelRecord
from parallelner.settings import QualitySettings, Settings

__all__ = [
    "REJECT_REASONS",
    "REVIEW_REASONS",
    "STAGE3_REASONS",
    "decide",
    "is_audit_sample",
    "assess_record",
    "assess_stream",
]

REJECT_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.EMPTY_TRANSLATION,
        Reason.WRONG_LANGUAGE,
        Reason.SOURCE_LANGUAGE_COPY,
        Reason.UNTRANSLATED,
        Reason.LENGTH_RATIO,
        Reason.LOW_BACKTRANSLATION,
        Reason.OVERLAPPING_SPANS,
        Reason.MENTION_MISMATCH,
        Reason.LEFTOVER_MARKUP,
        Reason.CONTROL_CHARACTERS,
        Reason.DUPLICATE,
        Reason.WRONG_SCRIPT_VARIANT,
    }
)
REVIEW_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.BORDERLINE_BACKTRANSLATION,
        Reason.INCOMPLETE_ENTITIES,
        Reason.REPAIR_UNFINISHED,
        Reason.LABEL_CHANGED,
        Reason.LOW_PROJECTION_SCORE,
        Reason.AUDIT_SAMPLE,
        *ENTITY_REASONS,
        Reason.UNEXPECTED_NAME,
        # found by earlier stages, carried on the record, routed here
        Reason.REPLY_EXTRA_ENTITIES,
        Reason.NO_BACKTRANSLATION,
    }
)
# Reasons that earlier stages put on the record and that decide the status here too.
CARRIED_REASONS: frozenset[Reason] = frozenset(
    {Reason.REPLY_EXTRA_ENTITIES, Reason.NO_BACKTRANSLATION}
)
# Everything stage 3 emits (recomputed on every assessment); NO_ENTITIES is informational.
STAGE3_REASONS: frozenset[Reason] = (
    REJECT_REASONS | REVIEW_REASONS | {Reason.NO_ENTITIES}
) - CARRIED_REASONS

# Every check that takes (record, settings), in the order their reasons are listed.
CHECKS = (*text_checks, check_script_variant, check_unexpected_names, check_entity_verification)

_FINAL = frozenset({Status.FAILED, Status.REVIEWED_ACCEPTED, Status.REVIEWED_REJECTED})


def is_audit_sample(record_id: str, q: QualitySettings) -> bool:
    """Whether an accepted record is drawn for the audit (deterministic per id and seed)."""
    digest = hashlib.sha256(f"{q.seed}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < q.audit_rate


def decide(
    record_id: str,
    reasons: Iterable[Reason],
    q: QualitySettings,
    carried: Iterable[Reason] = (),
) -> tuple[Status, tuple[Reason, ...]]:
    """Status for a record with these stage-3 reasons, and the reasons to keep.

    ``carried``: reasons already on the record from earlier stages; those in
    ``CARRIED_REASONS`` route too (they are kept on the record by the caller).
    """
    reasons = tuple(reasons)
    routing = (*reasons, *(r for r in carried if r in CARRIED_REASONS))
    if any(r in REJECT_REASONS for r in routing):
        return Status.REJECTED, reasons
    if any(r in REVIEW_REASONS for r in routing):
        return Status.REVIEW, reasons
    if is_audit_sample(record_id, q):
        return Status.REVIEW, (*reasons, Reason.AUDIT_SAMPLE)
    return Status.ACCEPTED, reasons


def assess_record(draft: ParallelRecord, q: QualitySettings, seen: set[str]) -> ParallelRecord:
    """Run every check on one record; return a copy with status, reasons and scores.

    ``seen`` is the run's set of duplicate keys (updated here). Failed and human-reviewed
    records come back unchanged.
    """
    if draft.status in _FINAL:
        return draft
    draft = verify_entities(draft, q)
    scores = dict(draft.scores)
    found: list[Reason] = []
    for check in CHECKS:
        finding = check(draft, q)
        if finding is not None:
            scores.update(finding.scores)
            found.extend(finding.reasons)
    dup = check_duplicate(draft, seen)
    if dup is not None:
        found.extend(dup.reasons)
    earlier = tuple(r for r in draft.reasons if r not in STAGE3_REASONS)
    status, stage3 = decide(draft.record_id, dict.fromkeys(found), q, carried=earlier)
    return draft.model_copy(
        update={"status": status, "reasons": earlier + stage3, "scores": scores}
    )


def mark_duplicate(record: ParallelRecord) -> ParallelRecord:
    """``record`` (assessed already) with ``duplicate`` added: rejected, its other findings
    kept, no audit draw. What ``assess_record`` gives when the pair was seen before, without
    running the checks again."""
    if record.status in _FINAL or Reason.DUPLICATE in record.reasons:
        return record
    earlier = tuple(r for r in record.reasons if r not in STAGE3_REASONS)
    found = [r for r in record.reasons if r in STAGE3_REASONS and r is not Reason.AUDIT_SAMPLE]
    stage3 = tuple(dict.fromkeys([*found, Reason.DUPLICATE]))  # a reject reason: no audit
    return record.model_copy(update={"status": Status.REJECTED, "reasons": earlier + stage3})


def assess_stream(
    records: Iterable[ParallelRecord], settings: Settings, seen: set[str] | None = None
) -> Iterator[ParallelRecord]:
    """Assess records one by one, in order; pass ``seen`` to share duplicates across calls."""
    seen = set() if seen is None else seen
    q = settings.quality
    for record in records:
        yield assess_record(record, q, seen)

"""Routing: accepted, rejected or review, from the reasons the checks found.

Three layers, as in every stage: ``decide`` (reasons -> status), ``assess_record`` (one
record), ``assess_stream`` (an iterator of records, with the run's duplicate set).

Rules, in order:

1. ``failed`` records (stage 1 could not translate) and records a person already
   reviewed (``reviewed_accepted`` / ``reviewed_rejected``) are returned unchanged.
2. Any reason in ``REJECT_REASONS`` -> ``rejected``.
3. Else any reason in ``REVIEW_REASONS`` (borderline back-translation, entities the
   repair ladder could not place, changed labels, low projection scores, every entity
   verification reason, and what earlier stages put on the record: an extra entity in
   the reply, no back-translation) -> ``review``.
4. Else ``accepted``, except a seeded random audit sample (``quality.audit_rate``,
   default 2%) -> ``review`` with ``audit_sample``. The draw hashes the seed and the
   record id, so a rerun picks the same records whatever the order or sharding.

Reasons from earlier stages stay on the record and route too; the assess stage's own
reasons (``ParallelRecord.reason_stages`` says whose a reason is; ``ASSESS_REASONS`` for
rows written before it did) are recomputed, so assessing a record twice gives the same
result.
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
    "ASSESS_REASONS",
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
# Everything the checks here emit (recomputed on every assessment; NO_ENTITIES is
# informational): the assess stage's declared reasons.
ASSESS_REASONS: frozenset[Reason] = (REJECT_REASONS | REVIEW_REASONS | {Reason.NO_ENTITIES}) - {
    Reason.REPLY_EXTRA_ENTITIES,  # stage 1 finds it
    Reason.NO_BACKTRANSLATION,  # the back-translation stage finds it
}
ASSESS = "assess"  # the stage name ``reason_stages`` gives the reasons found here

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
    """Status for a record with these reasons of the checks, and the reasons to keep.

    ``carried``: reasons already on the record from earlier stages; they route too (the
    caller keeps them on the record).
    """
    reasons = tuple(reasons)
    routing = (*reasons, *carried)
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
    earlier = _earlier(draft)
    status, own = decide(draft.record_id, dict.fromkeys(found), q, carried=earlier)
    update = {"status": status, "reasons": earlier + own, "scores": scores}
    if draft.reason_stages is not None:  # whose each reason is: earlier stages', and ours
        kept = {r.value for r in earlier}
        owners = {k: v for k, v in draft.reason_stages.items() if k in kept}
        update["reason_stages"] = owners | {r.value: ASSESS for r in own}
    return draft.model_copy(update=update)


def _is_own(record: ParallelRecord, reason: Reason) -> bool:
    """Whether ``reason`` on ``record`` was found here (by the assess stage)."""
    owner = (record.reason_stages or {}).get(reason.value)
    return owner == ASSESS if owner is not None else reason in ASSESS_REASONS


def _earlier(record: ParallelRecord) -> tuple[Reason, ...]:
    """The reasons earlier stages put on ``record``."""
    return tuple(r for r in record.reasons if not _is_own(record, r))


def mark_duplicate(record: ParallelRecord) -> ParallelRecord:
    """``record`` (assessed already) with ``duplicate`` added: rejected, its other findings
    kept, no audit draw. What ``assess_record`` gives when the pair was seen before, without
    running the checks again."""
    if record.status in _FINAL or Reason.DUPLICATE in record.reasons:
        return record
    earlier = _earlier(record)
    found = [r for r in record.reasons if _is_own(record, r) and r is not Reason.AUDIT_SAMPLE]
    own = tuple(dict.fromkeys([*found, Reason.DUPLICATE]))  # a reject reason: no audit
    owners = {
        k: v for k, v in (record.reason_stages or {}).items() if k != Reason.AUDIT_SAMPLE.value
    }
    update = {"status": Status.REJECTED, "reasons": earlier + own}
    if record.reason_stages is not None:
        update["reason_stages"] = owners | {Reason.DUPLICATE.value: ASSESS}
    return record.model_copy(update=update)


def assess_stream(
    records: Iterable[ParallelRecord], settings: Settings, seen: set[str] | None = None
) -> Iterator[ParallelRecord]:
    """Assess records one by one, in order; pass ``seen`` to share duplicates across calls."""
    seen = set() if seen is None else seen
    q = settings.quality
    for record in records:
        yield assess_record(record, q, seen)

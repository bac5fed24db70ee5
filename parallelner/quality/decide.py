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
4. Else ``accepted``.

The audit sample is drawn over a whole run, once its pairs are assessed
(``audit_draw``, applied by ``pipeline.finalize_run`` and ``assess_stream``): of the run's
``n`` accepted pairs, exactly ``round(audit_rate * n)`` (default 2%) go to ``review`` with
``audit_sample`` -- those whose seeded hash of the record id is smallest, so a rerun picks
the same pairs whatever the order or sharding. A simple random sample of a fixed size:
people see 2% of the accepted pairs, not 2% give or take a coin's luck (on 150 pairs a
per-pair coin gave 0-6%), and the precision estimate of ``quality.report`` is unbiased.

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
    "audit_key",
    "audit_draw",
    "apply_audit",
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


def audit_key(record_id: str, q: QualitySettings) -> int:
    """The record's place in the audit order (seeded; smallest first)."""
    digest = hashlib.sha256(f"{q.seed}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def audit_draw(accepted_ids: Iterable[str], q: QualitySettings) -> frozenset[str]:
    """Of a run's accepted record ids, the ``round(audit_rate * n)`` to audit: the ones
    with the smallest ``audit_key`` (deterministic per id set and seed)."""
    ids = set(accepted_ids)
    k = int(q.audit_rate * len(ids) + 0.5)
    if k <= 0:
        return frozenset()
    return frozenset(sorted(ids, key=lambda i: (audit_key(i, q), i))[:k])


def is_audit_sample(record_id: str, accepted_ids: Iterable[str], q: QualitySettings) -> bool:
    """Whether ``record_id`` is in the audit draw of a run with these accepted ids."""
    return record_id in audit_draw(accepted_ids, q)


def apply_audit(record: ParallelRecord, audited: frozenset[str] | set[str]) -> ParallelRecord:
    """``record`` sent to review as an audit sample when it is accepted and drawn."""
    if record.status is not Status.ACCEPTED or record.record_id not in audited:
        return record
    update: dict = {"status": Status.REVIEW, "reasons": (*record.reasons, Reason.AUDIT_SAMPLE)}
    if record.reason_stages is not None:
        update["reason_stages"] = {**record.reason_stages, Reason.AUDIT_SAMPLE.value: ASSESS}
    return record.model_copy(update=update)


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
    """Assess records one by one, in order; pass ``seen`` to share duplicates across calls.

    The audit sample is drawn over the whole stream (``audit_draw``), so the records come
    out once every one of them is assessed."""
    seen = set() if seen is None else seen
    q = settings.quality
    out = [assess_record(record, q, seen) for record in records]
    audited = audit_draw((r.record_id for r in out if r.status is Status.ACCEPTED), q)
    for record in out:
        yield apply_audit(record, audited)

"""Pull finished reviews from Label Studio back into the records (idempotent).

The project's JSON export is the source of truth (a webhook may only trigger a pull).
Per task: skipped / cancelled annotations do not count; the remaining annotations are
parsed (UTF-16 offsets -> code points, checked against the target text and the
config's labels) and combined by ``annotation.tasks.decide``. A task without a valid
annotation leaves its record as it is; so do tasks deleted in the UI (reported).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from annotation.client import ReviewClient, connect
from annotation.config import config_labels
from annotation.tasks import REVIEWABLE, apply_review, decide, parse_annotation, predicted_spans
from parallelner.errors import ReviewError
from parallelner.reasons import Reason, Status
from parallelner.records import ParallelRecord, table_to_records
from parallelner.settings import Settings

__all__ = ["pull", "apply_export", "pull_snapshot"]

_LIST_CAP = 50  # record ids listed per category in the report


def apply_export(
    records: Sequence[ParallelRecord],
    export: list[dict[str, Any]],
    known: set[str],
    users: Mapping[int, str] | None = None,
) -> tuple[list[ParallelRecord], dict[str, Any]]:
    """Apply an export to the records; returns (all records, updated or not) and a report.

    ``known`` are the labels of the project's config; ``users`` maps user ids to e-mails.
    """
    users = users or {}
    by_id = {r.record_id: i for i, r in enumerate(records)}
    out = list(records)
    counts = dict.fromkeys(
        ("tasks", "accepted", "rejected", "corrected", "changed", "unchanged", "pending",
         "skipped", "invalid", "unknown_tasks", "not_reviewable"), 0)  # fmt: skip
    problems: list[str] = []
    agreements: list[float] = []
    span_agreements: list[float] = []
    seen: set[str] = set()
    for task in export:
        counts["tasks"] += 1
        rid = str((task.get("data") or {}).get("record_id"))
        if rid not in by_id:
            counts["unknown_tasks"] += 1
            continue
        seen.add(rid)
        record = out[by_id[rid]]
        if record.status not in REVIEWABLE:
            counts["not_reviewable"] += 1
            continue
        anns = task.get("annotations") or []
        done = [a for a in anns if not a.get("was_cancelled")]
        if not done:
            counts["skipped" if anns else "pending"] += 1
            continue
        known_here = known or {
            lbl
            for a in done
            for it in a.get("result") or []
            for lbl in (it.get("value") or {}).get("labels", [])
        }
        votes = [parse_annotation(a, record.tgt_text or "", known_here, users) for a in done]
        for v in votes:
            problems.extend(f"{rid} ({v.annotator}): {p}" for p in v.problems)
        outcome = decide(votes)
        if outcome is None:
            counts["invalid"] += 1
            continue
        if len(outcome.voters) > 1:
            agreements.append(outcome.agreement)
        if outcome.span_agreement is not None:
            span_agreements.append(outcome.span_agreement)
        new, why = apply_review(record, outcome, predicted_spans(task))
        if why:
            counts["invalid"] += 1
            problems.extend(f"{rid}: {p}" for p in why)
            continue
        counts["accepted" if new.status == Status.REVIEWED_ACCEPTED else "rejected"] += 1
        counts["corrected"] += Reason.REVIEW_CORRECTED in new.reasons
        counts["changed" if new != record else "unchanged"] += 1
        out[by_id[rid]] = new
    missing = [
        r.record_id for r in records if r.status == Status.REVIEW and r.record_id not in seen
    ]
    audited = [r for r in out if Reason.AUDIT_SAMPLE in r.automatic_reasons() and r.status in
               (Status.REVIEWED_ACCEPTED, Status.REVIEWED_REJECTED)]  # fmt: skip
    audit_ok = sum(r.status == Status.REVIEWED_ACCEPTED for r in audited)
    report: dict[str, Any] = {
        **counts,
        "missing_from_project": len(missing),
        "missing_ids": missing[:_LIST_CAP],
        "problems": problems[:_LIST_CAP],
        "agreement": {
            "tasks_with_several_annotators": len(agreements),
            "mean": round(sum(agreements) / len(agreements), 4) if agreements else None,
            "disagreements": sum(a < 1.0 for a in agreements),
            "tasks_with_several_accepts": len(span_agreements),
            "span_mean": (
                round(sum(span_agreements) / len(span_agreements), 4) if span_agreements else None
            ),
        },
        "audit": {
            "reviewed": len(audited),
            "accepted": audit_ok,
            "precision": round(audit_ok / len(audited), 4) if audited else None,
        },
    }
    return out, report


def pull(
    records: Sequence[ParallelRecord], client: ReviewClient, title: str
) -> tuple[list[ParallelRecord], dict[str, Any]]:
    """Read the project's export and return (updated records, report).

    Raises ReviewError (nothing changed) when the server cannot be used or the project
    does not exist (never pushed, or deleted in the UI).
    """
    pid = client.find_project(title)
    if pid is None:
        raise ReviewError(
            f"no project titled {title!r} on Label Studio at {client.url} "
            "(deleted, or never pushed): nothing was changed"
        )
    known = config_labels(client.project_config(pid))
    export = client.export(pid)
    out, report = apply_export(records, export, known, client.users())
    report["project_id"] = pid
    report["project_url"] = client.project_url(pid)
    return out, report


def pull_snapshot(settings: Settings, snapshot: str = "main") -> dict[str, Any]:
    """Pull the reviews into the dataset: one new snapshot with the changed rows.

    Reads the reviewable rows (review, reviewed_*) of ``snapshot``, applies the export
    and, only when some record changed, commits the changed rows as a new snapshot
    (``replace``: same record ids, new files). A second pull with nothing new in
    Label Studio commits nothing. Server errors raise before anything is written.
    """
    from parallelner.store import commit, load_snapshot

    statuses = sorted(s.value for s in REVIEWABLE)
    records = table_to_records(load_snapshot(snapshot, status=statuses, settings=settings))
    updated, report = pull(records, connect(settings), settings.label_studio_project)
    changed = [new for old, new in zip(records, updated, strict=True) if new != old]
    report["snapshot"] = None
    if changed:
        run_id = "review-pull-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        report["snapshot"] = commit(
            changed,
            run_id,
            settings=settings,
            replace=True,
            properties={
                "source": "label-studio",
                "project": settings.label_studio_project,
                "changed": len(changed),
                "from_snapshot": snapshot,
            },
        )
    return {"from_snapshot": snapshot, "records_considered": len(records), **report}

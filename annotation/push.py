"""Push the pairs in review to Label Studio as tasks with pre-annotations (idempotent).

The project is found by its title, created when missing, and its labeling config
widened when new ontology classes arrive (labels are never removed: existing
annotations may use them). A record already in the project (by ``data.record_id``) is
never imported again, so pushing twice creates no duplicate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from annotation.client import ReviewClient, connect
from annotation.config import INSTRUCTIONS, config_labels, labeling_config
from annotation.tasks import model_version, record_classes, record_to_task
from parallelner.reasons import Status
from parallelner.records import ParallelRecord, table_to_records
from parallelner.settings import Settings

__all__ = ["push", "ensure_project", "push_snapshot", "preview", "preview_snapshot"]


# The Data Manager (the project's task table) shows every data field as a column, the
# fields the labeling config uses first: ``src_html`` would be the first column, raw
# HTML. The tab made at creation hides the fields meant for the labeling view only, so
# the table shows plain text (tgt_text, src_text, why...); the HTML stays in the tasks.
REVIEW_VIEW = "Review"
HIDDEN_IN_TABLE = (
    "tasks:data.src_html",
    "tasks:data.pushed_spans",
    # what Label Studio 1.23's default tab hides too (a view lists every hidden column)
    *(f"tasks:{c}" for c in ("inner_id", "annotations_results", "annotations_ids",
      "predictions_score", "predictions_model_versions", "predictions_results",
      "file_upload", "storage_filename", "created_at", "updated_at", "updated_by",
      "avg_lead_time", "draft_exists")),
)  # fmt: skip


def review_view() -> dict[str, Any]:
    """The Data Manager tab a new project gets (Label Studio's own view format)."""
    return {
        "title": REVIEW_VIEW,
        "type": "list",
        "target": "tasks",
        "hiddenColumns": {"explore": list(HIDDEN_IN_TABLE), "labeling": list(HIDDEN_IN_TABLE)},
        "columnsWidth": {},
        "columnsDisplayType": {},
        "gridWidth": 4,
    }


def ensure_project(
    client: ReviewClient, title: str, classes: set[str], version: str | None = None
) -> tuple[int, bool]:
    """Find the project by title or create it; widen its labels to ``classes``.

    ``version`` becomes the project's model version, so that new annotations start from
    the predictions of the records being pushed. The project gets the ``Review`` Data
    Manager tab (plain-text columns) once; tabs its users made or changed are left as
    they are. Returns (project id, created).
    """
    pid = client.find_project(title)
    if pid is None:
        config = labeling_config(classes)
        pid = client.create_project(title, config, INSTRUCTIONS, version)
        client.create_view(pid, review_view())
        return pid, True
    if REVIEW_VIEW not in client.view_titles(pid):  # a project made before the tab existed
        client.create_view(pid, review_view())
    current = config_labels(client.project_config(pid))
    if not classes <= current:
        client.update_project(
            pid, label_config=labeling_config(classes | current), expert_instruction=INSTRUCTIONS
        )
    if version and client.project_model_version(pid) != version:
        client.update_project(pid, model_version=version)
    return pid, False


def _in_review(records: Iterable[ParallelRecord]) -> tuple[dict[str, ParallelRecord], Counter[str]]:
    """The records to push (status ``review``, one per record id), the others by status."""
    review: dict[str, ParallelRecord] = {}
    not_review: Counter[str] = Counter()
    for r in records:
        if r.status == Status.REVIEW:
            review.setdefault(r.record_id, r)
        else:
            not_review[r.status.value] += 1
    return review, not_review


def preview(records: Iterable[ParallelRecord]) -> dict[str, Any]:
    """What ``push`` would import, without a Label Studio: how many tasks, their classes,
    and one task as Label Studio receives it (the first with pre-annotated spans)."""
    review, not_review = _in_review(records)
    tasks = (record_to_task(r) for r in review.values())
    example = next((t for t in tasks if t["predictions"][0]["result"]), None)
    if example is None and review:
        example = record_to_task(next(iter(review.values())))
    return {
        "would_push": len(review),
        "classes": sorted(record_classes(review.values())),
        "not_in_review": dict(sorted(not_review.items())),
        "example_task": example,
    }


def preview_snapshot(settings: Settings, snapshot: str = "main") -> dict[str, Any]:
    """``preview`` of the ``review`` rows of a dataset snapshot (nothing is sent)."""
    from parallelner.store import load_snapshot

    table = load_snapshot(snapshot, status=[Status.REVIEW.value], settings=settings)
    return {"snapshot": snapshot, **preview(table_to_records(table))}


def push(records: Iterable[ParallelRecord], client: ReviewClient, title: str) -> dict[str, Any]:
    """Import every record with status ``review`` that the project does not have yet.

    Returns a report: project id, whether it was created, how many tasks were imported,
    how many were already there, and the other records counted by status (not pushed).
    """
    review, not_review = _in_review(records)
    classes = record_classes(review.values()) or {"Miscellaneous"}
    versions = Counter(model_version(r) for r in review.values())
    version = versions.most_common(1)[0][0] if versions else None
    pid, created = ensure_project(client, title, classes, version)
    existing = client.task_record_ids(pid)
    new = [record_to_task(r) for rid, r in review.items() if rid not in existing]
    imported = client.import_tasks(pid, new) if new else 0
    return {
        "project_id": pid,
        "project_url": client.project_url(pid),
        "project_created": created,
        "model_version": version,
        "imported": imported,
        "already_in_project": len(review) - len(new),
        "not_in_review": dict(sorted(not_review.items())),
    }


def push_snapshot(settings: Settings, snapshot: str = "main") -> dict[str, Any]:
    """Push the ``review`` rows of a dataset snapshot to the project named in settings."""
    from parallelner.store import load_snapshot

    table = load_snapshot(snapshot, status=[Status.REVIEW.value], settings=settings)
    records = table_to_records(table)
    report = push(records, connect(settings), settings.label_studio_project)
    return {"snapshot": snapshot, "records_in_review": len(records), **report}

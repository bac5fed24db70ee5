"""Record <-> task conversion and the decision rule, on real pairs, without a server.

Annotations are written in the shape Label Studio 1.23 exports them (checked against
the real server in test_roundtrip.py): ``completed_by`` is a user id, ``updated_at`` an
ISO time, results carry ``from_name`` / ``value``.
"""

from __future__ import annotations

from typing import Any

import pytest

from annotation.pull import apply_export
from annotation.tasks import record_to_task
from parallelner.reasons import Reason, Status
from parallelner.records import UnprojectedEntity
from tests.annotation.conftest import with_prefix

USERS = {1: "ana@example.org", 2: "bo@example.org", 3: "cy@example.org"}
KNOWN = {"Person", "Location", "Organization", "Miscellaneous"}


def ann(user: int, choice: str | None, spans: list[dict] | None = None, at: str = "10",
        reasons: tuple[str, ...] = (), cancelled: bool = False) -> dict[str, Any]:  # fmt: skip
    result = list(spans or [])
    if choice:
        result.append({"from_name": "decision", "to_name": "tgt", "type": "choices",
                       "value": {"choices": [choice]}})  # fmt: skip
    if reasons:
        result.append({"from_name": "reason", "to_name": "tgt", "type": "choices",
                       "value": {"choices": list(reasons)}})  # fmt: skip
    return {"completed_by": user, "result": result, "was_cancelled": cancelled,
            "updated_at": f"2026-11-25T08:{at}:00Z"}  # fmt: skip


def export_of(record, *annotations: dict) -> list[dict]:
    task = record_to_task(record)
    return [{"id": 1, "data": task["data"], "annotations": list(annotations)}]


def predicted(record) -> list[dict]:
    return [dict(r) for r in record_to_task(record)["predictions"][0]["result"]]


@pytest.fixture()
def rec(pud_records):
    return pud_records[0]


def test_task_carries_record_id_and_prediction(rec) -> None:
    task = record_to_task(rec)
    assert task["data"]["record_id"] == rec.record_id
    pred = task["predictions"][0]
    assert pred["model_version"] == "pipeline:0.1.0|prompt:translate.v1"
    assert [r["value"]["text"] for r in pred["result"]] == [e.text for e in rec.tgt_entities]
    assert task["data"]["src_html"].count("<mark") == len(rec.src_entities)


def test_source_html_escapes_markup(rec) -> None:
    assert rec.src_text.startswith("“")
    tricky = rec.model_copy(update={"src_text": "<" + rec.src_text[1:]})  # same length
    html = record_to_task(tricky)["data"]["src_html"]
    assert "&lt; While" in html and "< While" not in html


@pytest.mark.parametrize(
    ("votes", "status"),
    [
        (["Accept", "Accept", "Reject"], Status.REVIEWED_ACCEPTED),
        (["Accept", "Reject", "Reject"], Status.REVIEWED_REJECTED),
        (["Accept", "Reject"], Status.REVIEWED_REJECTED),  # a tie rejects
    ],
)
def test_majority_decides_and_a_tie_rejects(rec, votes, status) -> None:
    anns = [ann(i + 1, v, predicted(rec) if v == "Accept" else None, at=f"1{i}")
            for i, v in enumerate(votes)]  # fmt: skip
    (out,), report = apply_export([rec], export_of(rec, *anns), KNOWN, USERS)
    assert out.status == status
    assert out.annotator == ",".join(sorted(USERS[i + 1] for i in range(len(votes))))
    assert report["agreement"]["mean"] == round(max(votes.count("Accept"),
                                                    votes.count("Reject")) / len(votes), 4)  # fmt: skip


def test_latest_accepting_annotation_gives_the_spans(rec) -> None:
    early = ann(1, "Accept", predicted(rec), at="10")
    late = ann(2, "Accept", predicted(rec)[:1], at="20")  # removed the other spans
    (out,), report = apply_export([rec], export_of(rec, early, late), KNOWN, USERS)
    assert out.tgt_entities == rec.tgt_entities[:1]
    assert Reason.REVIEW_CORRECTED in out.reasons
    assert out.reviewed_at.isoformat() == "2026-11-25T08:20:00+00:00"
    assert report["agreement"]["span_mean"] == round(1 / len(rec.tgt_entities), 4)


def test_rejection_reasons_are_the_union_of_the_winning_side(rec) -> None:
    a = ann(1, "Reject", reasons=("Wrong span",))
    b = ann(2, "Reject", reasons=("Wrong type", "Wrong span"))
    (out,), _ = apply_export([rec], export_of(rec, a, b), KNOWN, USERS)
    assert out.reasons == (Reason.REVIEW_WRONG_SPAN, Reason.REVIEW_WRONG_TYPE)
    assert out.auto_reasons == (Reason.BORDERLINE_BACKTRANSLATION,)  # kept as history


def test_reasons_say_what_the_review_decided_the_automatic_ones_are_history(rec) -> None:
    """A reviewer who fixed every entity: reasons no longer say incomplete_entities."""
    auto = (Reason.INCOMPLETE_ENTITIES, Reason.REPAIR_UNFINISHED)
    missing = rec.tgt_entities[-1]
    doubted = rec.model_copy(
        update={
            "reasons": auto,
            "tgt_entities": rec.tgt_entities[:-1],
            "unprojected": (
                UnprojectedEntity(source_index=missing.source_index, label=missing.label,
                                  text=missing.text, reason=Reason.NOT_FOUND),
            ),
        }
    )  # fmt: skip
    fixed = predicted(rec)  # the reviewer drew the missing span
    (out,), _ = apply_export([doubted], export_of(doubted, ann(1, "Accept", fixed)), KNOWN, USERS)
    assert out.status == Status.REVIEWED_ACCEPTED and out.unprojected == ()
    assert out.reasons == (Reason.REVIEW_ACCEPTED, Reason.REVIEW_CORRECTED)
    assert out.auto_reasons == auto and out.automatic_reasons() == auto
    # reviewed again (the reviewer changes their mind): the history stays the automatic one
    export = export_of(out, ann(1, "Reject", reasons=("Bad translation",), at="30"))
    (again,), _ = apply_export([out], export, KNOWN, USERS)
    assert again.reasons == (Reason.REVIEW_BAD_TRANSLATION,) and again.auto_reasons == auto
    # plain accept without changes
    (plain,), _ = apply_export([rec], export_of(rec, ann(1, "Accept", predicted(rec))), KNOWN)
    assert plain.reasons == (Reason.REVIEW_ACCEPTED,)
    assert plain.auto_reasons == rec.reasons


def test_skipped_and_undecided_annotations_leave_the_record_in_review(rec) -> None:
    (out,), report = apply_export([rec], export_of(rec, ann(1, None, cancelled=True)), KNOWN)
    assert out == rec and report["skipped"] == 1
    (out,), report = apply_export([rec], export_of(rec, ann(1, None, predicted(rec))), KNOWN)
    assert out == rec and report["invalid"] == 1
    assert "no Accept/Reject decision" in report["problems"][0]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"start": 0, "end": 2}, "reads"),  # wrong place for the region's text
        ({"start": 5, "end": 500}, "outside"),
        ({"labels": ["Spaceship"]}, "not one known class"),
    ],
)
def test_invalid_spans_keep_the_record_in_review(rec, change, problem) -> None:
    spans = predicted(rec)
    spans[0] = {**spans[0], "value": {**spans[0]["value"], **change}}
    (out,), report = apply_export([rec], export_of(rec, ann(1, "Accept", spans)), KNOWN)
    assert out == rec and report["invalid"] == 1
    assert problem in report["problems"][0]


def test_applying_the_same_export_twice_changes_nothing_more(pud_records) -> None:
    rec = with_prefix(pud_records[1], "😀𠀀")
    spans = predicted(rec)
    spans[0] = {**spans[0], "value": {**spans[0]["value"], "labels": ["Person"]}}
    export = export_of(rec, ann(1, "Accept", spans))
    (once,), _ = apply_export([rec], export, KNOWN, USERS)
    (twice,), report = apply_export([once], export, KNOWN, USERS)
    assert twice == once and report["unchanged"] == 1
    assert once.tgt_entities[0].label == "PER" and once.tgt_entities[0].method == "manual"
    assert once.reasons.count(Reason.REVIEW_CORRECTED) == 1


def test_tasks_for_unknown_records_and_records_without_task_are_counted(pud_records) -> None:
    a, b = pud_records[:2]
    (out_a, out_b), report = apply_export([a, b], export_of(pud_records[2]), KNOWN)
    assert (out_a, out_b) == (a, b)
    assert report["unknown_tasks"] == 1 and report["missing_ids"] == [a.record_id, b.record_id]


def test_audit_sample_feeds_the_precision_estimate(pud_records) -> None:
    audited = [r.model_copy(update={"reasons": (Reason.AUDIT_SAMPLE,)}) for r in pud_records[:3]]
    export = []
    for i, (r, v) in enumerate(zip(audited, ["Accept", "Accept", "Reject"], strict=True)):
        task = export_of(r, ann(1, v, predicted(r) if v == "Accept" else None))[0]
        export.append({**task, "id": i})
    _, report = apply_export(audited, export, KNOWN, USERS)
    assert report["audit"] == {"reviewed": 3, "accepted": 2, "precision": round(2 / 3, 4)}


def test_the_reviewer_sees_what_a_doubted_entity_read_back_as(rec) -> None:
    e = rec.tgt_entities[0]
    doubted = e.model_copy(
        update={"back_translation": "charity", "roundtrip_score": 0.0,
                "checks": (Reason.ENTITY_ROUNDTRIP,)}
    )  # fmt: skip
    task = record_to_task(
        rec.model_copy(
            update={
                "tgt_entities": (doubted, *rec.tgt_entities[1:]),
                "reasons": (Reason.ENTITY_ROUNDTRIP,),
            }
        )
    )
    src = rec.src_entities[e.source_index].text
    why = task["data"]["why"]
    assert why.startswith("entity_roundtrip. ")
    assert f"“{e.text}” (for “{src}”) reads back as “charity”: entity_roundtrip" in why
    assert "reads back" not in record_to_task(rec)["data"]["why"]  # nothing doubted

"""Full round trip against a real Label Studio: push, annotate through the API, pull.

The annotator's side is played through the REST API the way the labeling page sends
it: results start from the task's prediction (same region ids) and offsets are code
points, as Label Studio 1.23's labeling page stores them (tests/annotation/test_ui.py
checks that in a real browser).
"""

from __future__ import annotations

import uuid

import pytest

from annotation.client import ReviewClient
from annotation.pull import pull
from annotation.push import push
from parallelner.errors import ReviewError
from parallelner.reasons import Reason, Status
from tests.annotation.conftest import LabelStudioServer, with_prefix


def decision(choice: str) -> dict:
    return {"from_name": "decision", "to_name": "tgt", "type": "choices",
            "value": {"choices": [choice]}}  # fmt: skip


@pytest.fixture()
def client(label_studio: LabelStudioServer) -> ReviewClient:
    return ReviewClient(label_studio.url, label_studio.token)


@pytest.fixture()
def title() -> str:
    return f"roundtrip {uuid.uuid4().hex[:8]}"


def _prediction(client: ReviewClient, task_id: int) -> list[dict]:
    task = client.http().tasks.get(task_id)
    preds = task.predictions or []
    return [dict(r) for r in (preds[0].result if preds else [])]


def test_push_annotate_pull_round_trip(client: ReviewClient, title: str, pud_records) -> None:
    base = pud_records[:6]
    emoji = with_prefix(pud_records[6], "🎉𠮷 ")  # emoji + CJK Extension B before the spans
    accepted = pud_records[7].model_copy(update={"status": Status.ACCEPTED})
    records = [*base, emoji, accepted]
    review_ids = [r.record_id for r in records if r.status == Status.REVIEW]

    first = push(records, client, title)
    assert first["project_created"] and first["imported"] == 7
    assert first["not_in_review"] == {"accepted": 1}
    again = push(records, client, title)
    assert again["project_id"] == first["project_id"] and again["imported"] == 0
    assert again["already_in_project"] == 7
    pid = first["project_id"]
    tasks = client.task_record_ids(pid)
    assert sorted(tasks) == sorted(review_ids)

    ls = client.http()
    second = ls.users.create(username="second", email="second@parallelner.test",
                             password="second-pass-4242")  # fmt: skip
    r_ok, r_bad, r_tie, r_skip, r_invalid, r_deleted = base

    # accept as predicted
    ls.annotations.create(tasks[r_ok.record_id],
                          result=[*_prediction(client, tasks[r_ok.record_id]), decision("Accept")])  # fmt: skip
    # emoji pair: shorten the last span to its family name and accept
    last = emoji.tgt_entities[-1]
    keep = last.text[-3:]  # e.g. 科瑞·舒爾曼 -> 舒爾曼
    start_cp = last.end - 3
    pred = _prediction(client, tasks[emoji.record_id])
    fixed = [dict(p) for p in pred]
    fixed[-1] = {**fixed[-1], "origin": "prediction-changed",
                 "value": {**fixed[-1]["value"], "start": start_cp, "end": last.end,
                           "text": keep}}  # fmt: skip
    ls.annotations.create(tasks[emoji.record_id], result=[*fixed, decision("Accept")])
    # reject with a reason and a comment
    ls.annotations.create(tasks[r_bad.record_id], result=[
        decision("Reject"),
        {"from_name": "reason", "to_name": "tgt", "type": "choices",
         "value": {"choices": ["Bad translation"]}},
        {"from_name": "comment", "to_name": "tgt", "type": "textarea",
         "value": {"text": ["meaning inverted"]}},
    ])  # fmt: skip
    # two annotators disagree: a tie rejects
    ls.annotations.create(tasks[r_tie.record_id], result=[decision("Accept")])
    ls.annotations.create(tasks[r_tie.record_id], result=[decision("Reject")],
                          completed_by=second.id)  # fmt: skip
    # skipped
    ls.annotations.create(tasks[r_skip.record_id], result=[], was_cancelled=True)
    # a span whose text does not match the target
    bad = _prediction(client, tasks[r_invalid.record_id])[0]
    bad["value"] = {**bad["value"], "text": "not in the sentence"}
    ls.annotations.create(tasks[r_invalid.record_id], result=[bad, decision("Accept")])
    # deleted in the UI
    ls.tasks.delete(tasks[r_deleted.record_id])

    updated, report = pull(records, client, title)
    by_id = {r.record_id: r for r in updated}

    ok = by_id[r_ok.record_id]
    assert ok.status == Status.REVIEWED_ACCEPTED
    assert ok.tgt_entities == r_ok.tgt_entities
    assert Reason.REVIEW_CORRECTED not in ok.reasons
    assert ok.annotator == "reviewer@parallelner.test" and ok.reviewed_at is not None

    em = by_id[emoji.record_id]
    assert em.status == Status.REVIEWED_ACCEPTED
    assert Reason.REVIEW_CORRECTED in em.reasons
    assert em.tgt_entities[:-1] == emoji.tgt_entities[:-1]
    fixed_entity = em.tgt_entities[-1]
    assert (fixed_entity.start, fixed_entity.end) == (start_cp, last.end)
    assert em.tgt_text[fixed_entity.start : fixed_entity.end] == keep == fixed_entity.text
    assert fixed_entity.method == "manual" and fixed_entity.source_index == last.source_index
    assert fixed_entity.label == last.label

    rej = by_id[r_bad.record_id]
    assert rej.status == Status.REVIEWED_REJECTED
    assert Reason.REVIEW_BAD_TRANSLATION in rej.reasons
    assert Reason.BORDERLINE_BACKTRANSLATION not in rej.reasons  # the review's reasons only
    assert Reason.BORDERLINE_BACKTRANSLATION in rej.auto_reasons  # earlier reasons kept
    assert rej.review_comment == "meaning inverted"

    tie = by_id[r_tie.record_id]
    assert tie.status == Status.REVIEWED_REJECTED
    assert tie.annotator == "reviewer@parallelner.test,second@parallelner.test"
    assert report["agreement"] == {"tasks_with_several_annotators": 1, "mean": 0.5,
                                   "disagreements": 1, "tasks_with_several_accepts": 0,
                                   "span_mean": None}  # fmt: skip

    for rid in (r_skip.record_id, r_invalid.record_id, r_deleted.record_id):
        assert by_id[rid] == next(r for r in records if r.record_id == rid)
    assert by_id[accepted.record_id] == accepted
    assert report["skipped"] == 1 and report["invalid"] == 1
    assert report["missing_from_project"] == 1 and report["missing_ids"] == [r_deleted.record_id]
    assert any("not in the sentence" in p for p in report["problems"])
    assert (report["accepted"], report["rejected"], report["corrected"]) == (2, 2, 1)

    # push again: only the deleted task comes back; no record has two tasks
    third = push(updated, client, title)
    assert third["imported"] == 1 and third["already_in_project"] == 2
    after = client.task_record_ids(pid)
    assert sorted(after) == sorted(set(review_ids))
    assert len(client.export(pid)) == 7

    # pull again: nothing changes
    again_records, again_report = pull(updated, client, title)
    assert again_records == updated
    assert again_report["changed"] == 0 and again_report["unchanged"] == 4


def test_bad_token_is_one_clear_error_without_the_token(label_studio: LabelStudioServer) -> None:
    token = "0000deadbeef0000deadbeef0000deadbeef0000"
    with pytest.raises(ReviewError) as err:
        ReviewClient(label_studio.url, token).whoami()
    assert "refused the API key" in str(err.value)
    assert token not in str(err.value) and label_studio.token not in str(err.value)


def test_unreachable_server_is_one_clear_error(label_studio: LabelStudioServer) -> None:
    from tests.annotation.conftest import _free_port

    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ReviewError, match="cannot reach Label Studio"):
        ReviewClient(url, label_studio.token).find_project("anything")


def test_pull_from_a_deleted_project_changes_nothing(
    client: ReviewClient, title: str, pud_records
) -> None:
    records = pud_records[:2]
    pid = push(records, client, title)["project_id"]
    client.http().projects.delete(pid)
    with pytest.raises(ReviewError, match="deleted, or never pushed"):
        pull(records, client, title)


def test_personal_access_token_pushes_like_a_legacy_token(
    client: ReviewClient, label_studio: LabelStudioServer, title: str, pud_records
) -> None:
    pat = client.http().tokens.create().token  # a JWT refresh token; the SDK refreshes it
    assert pat.count(".") == 2 and pat != label_studio.token
    with_pat = ReviewClient(label_studio.url, pat)
    assert with_pat.whoami() == label_studio.user
    assert push(pud_records[:2], with_pat, title)["imported"] == 2
    assert push(pud_records[:2], client, title)["imported"] == 0  # same project, same tasks

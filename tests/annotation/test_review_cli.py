"""`parallelner review ...` as a user runs it (the console script), against the dataset
store and a real Label Studio; the flows' tasks over the same functions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from annotation.client import ReviewClient
from flows.review import pull_task, push_task
from parallelner import store
from parallelner.reasons import Reason, Status
from parallelner.records import table_to_records
from parallelner.settings import load_settings
from tests.annotation.conftest import LabelStudioServer, _free_port

CLI = str(Path(sys.executable).parent / "parallelner")


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PARALLELNER_")}
    return subprocess.run([CLI, "review", *args], capture_output=True, text=True,
                          env={**base, "COLUMNS": "200", **env}, timeout=300)  # fmt: skip


@pytest.fixture()
def env(label_studio: LabelStudioServer, tmp_path: Path) -> dict[str, str]:
    return {
        "PARALLELNER_HOME": str(tmp_path / "home"),
        "PARALLELNER_LABEL_STUDIO_URL": label_studio.url,
        "PARALLELNER_LABEL_STUDIO_API_KEY": label_studio.token,
        "PARALLELNER_LABEL_STUDIO_PROJECT": f"cli {uuid.uuid4().hex[:8]}",
    }


def test_push_and_pull_through_the_store(env, label_studio, pud_records) -> None:
    settings = load_settings(home=Path(env["PARALLELNER_HOME"]))
    accepted = pud_records[3].model_copy(update={"status": Status.ACCEPTED})
    store.commit([*pud_records[:3], accepted], "run-1", settings=settings)

    res = run("push", "--json", env=env)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert (report["records_in_review"], report["imported"]) == (3, 3)
    assert label_studio.token not in res.stdout + res.stderr
    url = f"{label_studio.url}/projects/{report['project_id']}/data"
    assert report["project_url"] == url
    human = run("push", env=env)  # nothing new to import; still says where to review
    assert human.returncode == 0 and f"open: {url}" in human.stdout

    client = ReviewClient(label_studio.url, label_studio.token)
    tasks = client.task_record_ids(report["project_id"])
    accept = {"from_name": "decision", "to_name": "tgt", "type": "choices",
              "value": {"choices": ["Accept"]}}  # fmt: skip
    reject = {**accept, "value": {"choices": ["Reject"]}}
    wrong_type = {"from_name": "reason", "to_name": "tgt", "type": "choices",
                  "value": {"choices": ["Wrong type"]}}  # fmt: skip
    ls = client.http()
    ls.annotations.create(tasks[pud_records[0].record_id], result=[accept])  # spans removed
    ls.annotations.create(tasks[pud_records[1].record_id], result=[reject, wrong_type])

    # the flow's task runs the same pull; settings carry URL and key like the flow's
    flow_settings = load_settings(
        home=Path(env["PARALLELNER_HOME"]),
        label_studio_url=label_studio.url,
        label_studio_api_key=label_studio.token,
        label_studio_project=env["PARALLELNER_LABEL_STUDIO_PROJECT"],
    )
    pulled = pull_task.fn(flow_settings, "main")
    assert pulled["snapshot"] is not None
    assert (pulled["accepted"], pulled["rejected"], pulled["pending"]) == (1, 1, 1)

    rows = {
        r.record_id: r for r in table_to_records(store.load_snapshot("main", settings=settings))
    }
    assert len(rows) == 4  # no row dropped, none duplicated
    ok = rows[pud_records[0].record_id]
    assert ok.status == Status.REVIEWED_ACCEPTED and ok.tgt_entities == ()
    # reasons say what the review decided; the automatic ones are kept as history
    assert ok.reasons == (Reason.REVIEW_ACCEPTED, Reason.REVIEW_CORRECTED)
    assert ok.auto_reasons == pud_records[0].reasons
    # the source entities whose spans the annotator removed are listed as unprojected
    assert [u.source_index for u in ok.unprojected] == list(range(len(ok.src_entities)))
    assert {u.reason for u in ok.unprojected} == {Reason.REVIEW_CORRECTED}
    rej = rows[pud_records[1].record_id]
    assert rej.status == Status.REVIEWED_REJECTED and rej.reasons == (Reason.REVIEW_WRONG_TYPE,)
    assert rej.auto_reasons == pud_records[1].reasons
    # the pull's snapshot counts the 2 rows it changed (Iceberg rewrote a whole file)
    pull_snap = store.list_snapshots(settings)[-1]
    assert (pull_snap["added_records"], pull_snap["changed_records"]) == (0, 2)
    assert rows[pud_records[2].record_id].status == Status.REVIEW
    assert rows[accepted.record_id] == accepted

    again = run("pull", "--json", env=env)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["snapshot"] is None and second["changed"] == 0
    assert len(store.list_snapshots(settings)) == 2  # run-1 and the first pull only

    assert push_task.fn(flow_settings, "main")["imported"] == 0  # nothing new, no duplicate
    status = run("status", "--json", env=env)
    assert json.loads(status.stdout)["task_number"] == 3


def fails_cleanly(res: subprocess.CompletedProcess, message: str, secret: str) -> None:
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert message in " ".join(res.stderr.split())
    assert len(res.stderr.strip().splitlines()) <= 3  # one message (wrapped at most)
    assert secret not in res.stdout + res.stderr


def test_bad_token_unreachable_server_and_missing_project_fail_cleanly(env, label_studio) -> None:
    bad = "feedfacefeedfacefeedfacefeedfacefeedface"
    fails_cleanly(run("status", env={**env, "PARALLELNER_LABEL_STUDIO_API_KEY": bad}),
                  "refused the API key", bad)  # fmt: skip
    url = f"http://127.0.0.1:{_free_port()}"
    fails_cleanly(run("push", "--records", "/dev/null", env={**env, "PARALLELNER_LABEL_STUDIO_URL": url}),
                  "cannot reach Label Studio", label_studio.token)  # fmt: skip
    fails_cleanly(run("status", env=env), "no project titled", label_studio.token)
    home = Path(env["PARALLELNER_HOME"])
    assert not home.exists() or not any(home.iterdir())  # nothing written locally


def test_records_file_errors_name_the_line(env, tmp_path, pud_records) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(pud_records[0].model_dump_json() + "\n{not json\n", encoding="utf-8")
    fails_cleanly(run("push", "--records", str(path), env=env), f"{path}:2:", "unused")


def test_config_command_prints_the_labeling_config(env) -> None:
    res = run("config", "--dataset", "cluener", env=env)
    assert res.returncode == 0 and '<Label value="GovernmentAgency"' in res.stdout
    fails_cleanly(run("config", "--dataset", "nope", env=env), "unknown dataset 'nope'", "unused")


def test_records_file_mode_push_then_pull_writes_every_record(env, tmp_path, pud_records) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(r.model_dump_json() + "\n" for r in pud_records[:3]), encoding="utf-8")
    pushed = run("push", "--records", str(src), "--json", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["imported"] == 3
    out = tmp_path / "out.jsonl"
    pulled = run("pull", "--records", str(src), "--out", str(out), "--json", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["pending"] == 3
    assert out.read_text(encoding="utf-8") == src.read_text(encoding="utf-8")  # nothing reviewed
    home = Path(env["PARALLELNER_HOME"])
    assert not home.exists()  # file mode never touches the store


def test_a_label_studio_url_with_a_password_is_never_shown(tmp_path) -> None:
    secret = "lspw-" + uuid.uuid4().hex[:8]
    url = f"http://reviewer:{secret}@127.0.0.1:{_free_port()}"
    env = {"PARALLELNER_HOME": str(tmp_path / "home"), "PARALLELNER_LABEL_STUDIO_URL": url,
           "PARALLELNER_LABEL_STUDIO_API_KEY": "feedface" * 5}  # fmt: skip
    res = run("pull", "--records", "/dev/null", env=env)
    assert res.returncode == 2 and "cannot reach Label Studio at http://***@127.0.0.1" in res.stderr
    assert secret not in res.stdout + res.stderr
    client = ReviewClient(url, "feedface" * 5)
    assert secret not in client.project_url(3) and client.project_url(3).startswith("http://***@")


def test_push_dry_run_shows_a_task_and_connects_to_nothing(tmp_path, pud_records) -> None:
    settings = load_settings(home=tmp_path / "home")
    accepted = pud_records[3].model_copy(update={"status": Status.ACCEPTED})
    store.commit([*pud_records[:3], accepted], "run-1", settings=settings)
    env = {"PARALLELNER_HOME": str(tmp_path / "home"),
           "PARALLELNER_LABEL_STUDIO_URL": f"http://127.0.0.1:{_free_port()}"}  # fmt: skip

    res = run("push", "--dry-run", "--json", env=env)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["would_push"] == 3  # the accepted row is not read
    task = report["example_task"]
    assert task["data"]["record_id"] in {r.record_id for r in pud_records[:3]}
    assert task["predictions"][0]["result"]  # the first task with pre-filled spans
    human = run("push", "--dry-run", env=env)
    assert human.returncode == 0, human.stderr
    assert "3 pairs in review would become tasks" in human.stdout
    assert "nothing was sent" in human.stdout and task["data"]["tgt_text"] in human.stdout

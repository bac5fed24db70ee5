"""``parallelner run`` as production software (issue 15): the first start of Prefect on a
busy machine, two runs at once, stopping with SIGINT/SIGTERM and resuming, input that
holds nothing usable, slices and label sets, what a cached re-run says, and failures of
Prefect itself as one line. Each test runs the installed CLI in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parallelner.testing.openai_server import OpenAIServer
from tests.flows.helpers import (
    CLI,
    CLUENER_SAMPLE,
    REPO,
    WIKINEURAL,
    WIKINEURAL_SAMPLE,
    run_cli,
    run_env,
    summary_of,
)


def _last_line(stderr: str) -> str:
    return [ln for ln in stderr.splitlines() if ln.strip()][-1]


def _fresh_prefect(env: dict[str, str]) -> dict[str, str]:
    """The run's environment without the test helpers' start-up timeout: the CLI's own."""
    env = dict(env)
    env.pop("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", None)
    return env


def test_first_start_with_a_fresh_prefect_home_under_cpu_load(llm_server, tmp_path):
    # Prefect's first start migrates its database; two CPU-bound loops keep both cores
    # busy meanwhile (the machine of a user whose first run died in start-up)
    env = _fresh_prefect(run_env(tmp_path / "home", llm_server))
    assert not any((tmp_path / "prefect-home").iterdir())  # nothing migrated yet
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        res = run_cli(str(WIKINEURAL_SAMPLE), "--to", "zh", "--json", env=env)
    finally:
        for b in burners:
            b.kill()
            b.wait()
    summary = summary_of(res)
    assert sum(summary["counts"].values()) == 20
    assert "Traceback" not in res.stderr


def test_two_runs_at_once_share_one_fresh_prefect_home(llm_server, tmp_path):
    # en->zh and zh->en at once, as the paper's two directions, one PREFECT_HOME that
    # neither has migrated yet, one dataset home
    env = _fresh_prefect(run_env(tmp_path / "home", llm_server))
    cmds = [
        [CLI, "run", str(WIKINEURAL_SAMPLE), "--to", "zh", "--json"],
        [CLI, "run", str(CLUENER_SAMPLE), "--to", "en", "--json"],
    ]
    procs = [
        subprocess.Popen(
            c, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )  # fmt: skip
        for c in cmds
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        # the migration race printed `index ... already exists` and uvicorn's traceback
        assert "Traceback" not in err and "already exists" not in err, err[-3000:]
        summary = json.loads(out)
        assert sum(summary["counts"].values()) == 20 and summary["snapshot_id"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_run_within_seconds_and_the_same_command_resumes(sig, tmp_path):
    home = tmp_path / "home"
    # slow enough that the run is mid-way when the signal comes
    with OpenAIServer(model="test-model", service_time=0.4) as srv:
        env = run_env(home, srv)
        args = [CLI, "run", str(WIKINEURAL), "--to", "zh", "--shard-size", "10",
                "--max-in-flight", "4", "--json"]  # fmt: skip
        proc = subprocess.Popen(
            args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 300
        while len(srv.requests) < 12:  # the run is asking the LLM
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the run never reached the LLM"
            time.sleep(0.2)
        import psutil

        children = psutil.Process(proc.pid).children(recursive=True)  # the ephemeral API
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
        assert proc.returncode == 128 + sig, err[-3000:]
        assert took < 15, took
        assert "Traceback" not in err
        assert f"stopping ({sig.name})" in err and "same command again" in err
        assert out == ""  # no summary: the run did not finish
        gone, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, alive  # no orphaned Prefect server
        assert not list(home.rglob("*.tmp*")), list(home.rglob("*.tmp*"))
        asked_before = len(srv.requests)
        answered = {json.dumps(r["body"], sort_keys=True) for r in srv.requests}

        srv.reset_log()
        second = summary_of(run_cli(*args[2:], env=env))
    assert sum(second["counts"].values()) == 46 and second["snapshot_id"]
    repeated = [r for r in srv.requests if json.dumps(r["body"], sort_keys=True) in answered]
    # only requests that were in flight when the signal came are asked again
    assert len(repeated) <= 4 + 4, (len(repeated), asked_before)


def _spans(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def test_a_run_that_reads_nothing_usable_fails_in_one_line_and_commits_nothing(
    llm_server, tmp_path
):
    bad = _spans(tmp_path / "bad.jsonl", [
        {"lang": "en", "text": f"Alice met Bob {i}.",
         "entities": [{"start": 0, "end": 5, "label": "HERO"}]}
        for i in range(5)
    ])  # fmt: skip
    home = tmp_path / "home"
    res = run_cli(str(bad), "--to", "zh", env=run_env(home, llm_server))
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    last = _last_line(res.stderr)
    assert last.startswith("error:") and "no usable instance" in last, last
    assert "unknown_label 5" in last and "--dataset" in last, last
    assert "acceptance rate" not in res.stdout
    assert len(llm_server.requests) == 0
    from parallelner.errors import StoreError
    from parallelner.settings import Settings
    from parallelner.store.table import list_snapshots

    try:
        snapshots = list_snapshots(Settings(home=home))
    except StoreError:
        snapshots = []
    assert snapshots == []

    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    res = run_cli(str(empty), "--to", "zh", env=run_env(home, llm_server))
    assert res.returncode == 2 and "holds no instances" in _last_line(res.stderr)


def test_span_jsonl_with_conll_labels_runs_and_limit_and_dataset_apply(llm_server, tmp_path):
    # the format DESIGN's own example shows: CoNLL tags, no source_dataset on the line
    texts = [("Alice works at Acme in Paris.", [(0, 5, "PER"), (15, 19, "ORG"), (23, 28, "LOC")]),
             ("Bob visited Berlin.", [(0, 3, "PER"), (12, 18, "LOC")]),
             ("The Euro rose.", [(4, 8, "MISC")])]  # fmt: skip
    src = _spans(tmp_path / "conll-spans.jsonl", [
        {"lang": "en", "text": t, "entities": [{"start": s, "end": e, "label": lab}
                                               for s, e, lab in ents]}
        for t, ents in texts
    ])  # fmt: skip
    home = tmp_path / "home"
    env = run_env(home, llm_server)
    summary = summary_of(run_cli(str(src), "--to", "zh", "--json", env=env))
    assert summary["read_counts"].get("quarantined", 0) == 0
    assert sum(summary["counts"].values()) == 3

    sliced = summary_of(run_cli(str(src), "--to", "de", "--limit", "2", "--json", env=env))
    assert sliced["instances"] == 2 and sum(sliced["counts"].values()) == 2

    # --dataset names the label set: cluener labels are unknown to it
    res = run_cli(str(src), "--to", "de", "--dataset", "cluener", env=env)
    assert res.returncode == 2 and "unknown_label 3" in _last_line(res.stderr)
    res = run_cli(str(src), "--to", "de", "--dataset", "klingon", env=env)
    assert res.returncode == 2 and "klingon" in _last_line(res.stderr)
    assert "Traceback" not in res.stderr


def test_a_cached_rerun_says_what_it_did_and_what_it_reused(llm_server, tmp_path):
    env = run_env(tmp_path / "home", llm_server)
    args = [str(WIKINEURAL_SAMPLE), "--to", "zh", "--shard-size", "10"]
    first = summary_of(run_cli(*args, "--json", env=env))
    assert first["shards"] == {"total": 2, "reused": 0, "processed": 2}
    assert first["snapshot_new"] is True and first["usage"]["requests"] > 0
    llm_server.reset_log()
    second = summary_of(run_cli(*args, "--json", env=env))
    assert second["shards"] == {"total": 2, "reused": 2, "processed": 0}
    assert second["snapshot_new"] is False and second["snapshot_id"] == first["snapshot_id"]
    assert second["usage"].get("requests", 0) == 0 == len(llm_server.requests)
    text = run_cli(*args, env=env)
    assert text.returncode == 0, text.stderr[-3000:]
    import re

    assert re.search(r"llm requests\s*│\s*0\s*│", text.stdout), text.stdout
    assert "2 finished by an earlier run" in text.stdout
    assert "committed by an earlier run" in text.stdout
    assert "20/20" in text.stderr  # the bar counts the reused rows


def test_a_prefect_api_that_is_not_there_is_one_line(llm_server, tmp_path):
    from parallelner.llm.local import free_port

    env = run_env(tmp_path / "home", llm_server,
                  PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api")  # fmt: skip
    res = run_cli(str(WIKINEURAL_SAMPLE), "--to", "zh", env=env, timeout=300)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    last = _last_line(res.stderr)
    assert last.startswith("error:") and "Prefect" in last, last


def test_a_prefect_start_that_times_out_is_one_line(llm_server, tmp_path):
    env = run_env(tmp_path / "home", llm_server,
                  PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")  # fmt: skip
    res = run_cli(str(WIKINEURAL_SAMPLE), "--to", "zh", env=env, timeout=300)
    assert res.returncode == 1, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    last = _last_line(res.stderr)
    assert "the local Prefect API did not start" in last, last
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in last


def test_no_telemetry_notice_in_a_terminal(tmp_path):
    import pty

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "DO_NOT_TRACK", "CI", "GITHUB_"))}  # fmt: skip
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    code = "import parallelner_cli, prefect; print('imported')"
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal, as a user's shell gives it
        os.execve(sys.executable, [sys.executable, "-c", code], env)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert "imported" in text
    assert "telemetry" not in text.lower() and "anonymous" not in text.lower(), text

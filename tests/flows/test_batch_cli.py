"""`parallelner run --batch` as users run it (the console script, the Prefect flow): the
summary names its rounds, a SIGKILL while a job is running loses nothing and pays nothing
twice, and the same command again afterwards asks nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from parallelner.batchrun import BatchJournal
from parallelner.testing.batch_server import BatchServer
from parallelner.testing.openai_server import OpenAIServer
from tests.flows.helpers import CLI, REPO, WIKINEURAL_SAMPLE, run_cli, run_env, summary_of

ARGS = (str(WIKINEURAL_SAMPLE), "--to", "zh", "--shard-size", "4", "--batch", "--json")


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "batch.yaml"
    cfg.write_text("batch:\n  poll_s: 0.2\n")
    return cfg


def test_a_batch_run_killed_while_its_job_runs_resumes_and_pays_nothing_twice(tmp_path):
    home = tmp_path / "home"
    with OpenAIServer() as srv, BatchServer(chat=srv, complete_after_s=4.0) as bs:
        env = run_env(home, bs.base_url)
        args = [CLI, "run", *ARGS, "-c", str(_config(tmp_path))]
        with open(tmp_path / "first.log", "w") as log:
            proc = subprocess.Popen(
                args, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        journals = home / "batches"
        end = time.monotonic() + 240
        while True:  # killed once round 1's job is recorded and still running
            submitted = [
                e for j in journals.glob("*/journal.jsonl")
                for e in BatchJournal(j.parent).events() if e["event"] == "submitted"
            ] if journals.exists() else []  # fmt: skip
            if submitted:
                break
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < end, "no job submitted in time"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        at_kill = bs.stats()
        assert at_kill["batches"] == 1 and at_kill["statuses"]["batch_0001"] != "completed"

        summary = summary_of(run_cli(*ARGS, "-c", str(_config(tmp_path)), env=env))
        after = bs.stats()
        (journal_dir,) = journals.iterdir()
        rounds = BatchJournal(journal_dir).rounds()
        # the killed run's job was waited for, not submitted again; each round one job
        assert after["batches"] == len(rounds)
        assert after["lines_submitted"] == sum(r["questions"] for r in rounds.values())
        assert sum(summary["counts"].values()) == summary["read_counts"]["read"]
        assert [r["round"] for r in summary["batch"]["rounds"]][-1] == len(rounds) + 1
        assert summary["usage"]["batch_rounds"] == len(summary["batch"]["rounds"])

        # the same command again: every shard is finished, nothing is asked
        again = summary_of(run_cli(*ARGS, "-c", str(_config(tmp_path)), env=env))
        assert bs.stats()["lines_submitted"] == after["lines_submitted"]
        assert again["usage"]["requests"] == 0
        assert json.dumps(again["counts"]) == json.dumps(summary["counts"])

"""`make demo` (scripts/demo.sh) end to end on a fresh home, twice, as a new user runs it.

The local-model runs take one sentence each here (``PARALLELNER_DEMO_LIMIT=1``) so the
test stays at a few minutes; every other step runs exactly as in ``make demo``. Label
Studio is pointed at a closed port, so the annotator step shows the dry run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, _free_port

STEP = re.compile(r"== (\d+)\. \[")
DONE_IN = re.compile(r"^   \(\d+ s\)$", re.M)


def run_demo(tmp: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARALLELNER_", "PREFECT_"))}
    env |= {
        "BIN": str(Path(sys.executable).parent),
        "PARALLELNER_HOME": str(tmp / "home"),
        "PREFECT_HOME": str(tmp / "prefect"),
        "PARALLELNER_DEMO_OUT": str(tmp / "out"),
        "PARALLELNER_DEMO_LIMIT": "1",
        "PARALLELNER_LABEL_STUDIO_URL": f"http://127.0.0.1:{_free_port()}",
        "COLUMNS": "160",
    }
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip


def check_every_step_finished(res: subprocess.CompletedProcess) -> str:
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "Traceback" not in out, out[-4000:]
    assert not re.search(r"^error:", out, re.M), out[-4000:]
    steps = [int(n) for n in STEP.findall(res.stdout)]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 10
    assert len(DONE_IN.findall(res.stdout)) == len(steps)  # each step ran to its end
    assert "== done" in res.stdout
    return out


@pytest.mark.slow
def test_demo_walks_every_path_and_a_second_run_reuses_it(tmp_path):
    from datasets import load_dataset

    first = check_every_step_finished(run_demo(tmp_path))
    out = tmp_path / "out"
    assert "0 of 1 accepted" in first or "1 of 1 accepted" in first  # the plain reading
    assert "--llm-base-url" in first
    ds = load_dataset(str(out / "export"))
    statuses = [s for split in ds.values() for s in split["status"]]
    assert statuses.count("accepted") >= 1 and set(statuses) <= {"accepted", "reviewed_accepted"}
    report = json.loads((out / "tiny-sft" / "train_report.json").read_text())
    assert report["steps_this_run"] > 0 and report["snapshot"] == "demo-v1"
    evaluation = json.loads((out / "eval" / "eval_report.json").read_text())
    assert evaluation["overall"]["examples"] > 0
    assert "scores mean nothing" in first
    assert "nothing was sent" in first  # no Label Studio: the dry run shows a task
    assert "dataset tag demo-v1:" in first and "next, the three commands" in first

    second = check_every_step_finished(run_demo(tmp_path))
    assert "tag demo-v1 exists" in second and "already" not in second.lower()
    assert "finished by an earlier run" in second  # the run's shards and reply cache
    assert "committed before from the same input and settings: nothing new" in second
    assert "reused from an earlier make demo:" in second
    assert json.loads((out / "tiny-sft" / "train_report.json").read_text()) == report

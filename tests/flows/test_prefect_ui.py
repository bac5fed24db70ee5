"""`parallelner run` against a real `prefect server start` (SQLite, UI on), as its users
look at it: the flow run's logs, name and tags through the Prefect API, the address the
CLI prints, and the quality report's plots loaded by the Prefect UI in headless Chromium."""

from __future__ import annotations

import re
import time
from uuid import UUID

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)

from parallelner.testing.openai_server import OpenAIServer
from tests.flows.helpers import WIKINEURAL_SAMPLE, prefect_server, run_cli, run_env, summary_of

SHARDS = 4  # 20 sample sentences in shards of 6


@pytest.fixture(scope="module")
def server_runs(tmp_path_factory):
    """One server; the sample run twice through the CLI: as a user does, then again --json."""
    root = tmp_path_factory.mktemp("prefect-ui")
    with prefect_server(root / "server") as api, OpenAIServer(model="test-model") as llm:
        env = run_env(root / "home", llm, PREFECT_API_URL=api)
        env.pop("PREFECT_LOGGING_LEVEL")  # the CLI's own logging set-up, as a user gets it
        args = (str(WIKINEURAL_SAMPLE), "--to", "zh", "--shard-size", "6")
        first = run_cli(*args, env=env)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        again = run_cli(*args, "--json", env=env)
        yield {"api": api, "first": first, "again": again}


def _client(api: str) -> SyncPrefectClient:
    return SyncPrefectClient(api)


def _flow_run_id(stdout: str) -> UUID:
    ids = re.findall(r"^flow run: .*\(id ([0-9a-f-]{36})\)$", stdout, re.MULTILINE)
    assert len(ids) == 1, stdout
    return UUID(ids[0])


def _logs(api: str, flow_run_id: UUID, until: str, count: int) -> list:
    """The run's logs, once ``count`` messages match ``until`` (they arrive in batches)."""
    end = time.monotonic() + 60
    with _client(api) as client:
        while True:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
            if sum(bool(re.search(until, log.message)) for log in logs) >= count:
                return logs
            assert time.monotonic() < end, [log.message for log in logs]
            time.sleep(1)


def test_run_logs_each_shard_to_prefect_and_nothing_to_the_terminal(server_runs):
    api, first = server_runs["api"], server_runs["first"]
    logs = _logs(api, _flow_run_id(first.stdout), r"^shard \d/\d .* finished", SHARDS)
    info = [log.message for log in logs if log.level == 20]
    for n in range(1, SHARDS + 1):
        started = [m for m in info if re.match(rf"shard {n}/{SHARDS} \(\w+\) started", m)]
        finished = [m for m in info if re.match(rf"shard {n}/{SHARDS} \(\w+\) finished", m)]
        assert len(started) == len(finished) == 1, info
        assert re.search(
            r"finished: (\w+ \d+, )*\w+ \d; LLM requests [1-9]\d*, cache hits", finished[0]
        )
    # the shard lines belong to the shards' task runs, the run's summary to the flow run
    assert all(log.task_run_id for log in logs if log.message.startswith("shard "))
    assert any(log.task_run_id is None and "instances in 4 shards" in log.message for log in logs)
    # the terminal: the progress bar and the summary, no Prefect log line
    assert not re.search(r"\| (INFO|DEBUG)\s*\|", first.stderr + first.stdout), first.stderr
    assert "shard 1/" not in first.stderr + first.stdout

    # a re-run finds every shard in Prefect's cache and says so in the run's logs
    again = summary_of(server_runs["again"])
    cached = _logs(api, UUID(again["flow_run_id"]), r"cached \(finished by an earlier", SHARDS)
    assert not [log for log in cached if re.match(r"shard \d/\d \(\w+\) started", log.message)]
    assert not re.search(r"\| (INFO|DEBUG)\s*\|", server_runs["again"].stderr)


def test_run_is_named_and_tagged_and_the_cli_prints_its_address(server_runs):
    api, first = server_runs["api"], server_runs["first"]
    again = summary_of(server_runs["again"])
    ui = api.removesuffix("/api")
    flow_run_id = _flow_run_id(first.stdout)
    assert f"\nview at: {ui}/runs/flow-run/{flow_run_id}\n" in first.stdout

    with _client(api) as client:
        runs = [client.read_flow_run(flow_run_id), client.read_flow_run(UUID(again["flow_run_id"]))]
    for run in runs:
        assert run.name == f"{again['run_id']} en→zh"
        assert set(run.tags) == {"en-zh", "model:test-model", "dataset:wikineural"}
    assert runs[0].id != runs[1].id  # two flow runs of one dataset run (the second cached)
    assert again["flow_run_name"] == runs[1].name
    assert again["flow_run_url"] == f"{ui}/runs/flow-run/{again['flow_run_id']}"
    assert f"flow run: {runs[0].name}  (id {flow_run_id})" in first.stdout


# Whether the report's plot has loaded: its <img> exists, finished loading, has pixels.
PLOT = "[...document.images].find(i => i.alt === 'score distributions')"
LOADED = f"!!{PLOT} && {PLOT}.complete"


def test_quality_report_plots_load_in_the_prefect_ui(server_runs):
    from annotation.screenshot import chromium_page

    api, first = server_runs["api"], server_runs["first"]
    with _client(api) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[_flow_run_id(first.stdout)])
            )
        )
    report = [a for a in arts if a.key == "quality-report"]
    assert len(report) == 1 and report[0].type == "markdown"
    # the UI's page of the artifact, as a user opens it from the flow run's Artifacts tab
    url = f"{api.removesuffix('/api')}/artifacts/artifact/{report[0].id}"
    with chromium_page() as page:
        page.call("Page.navigate", url=url)
        page.wait_for(LOADED, 120)
        heading = page.js("document.querySelector('h1')?.textContent")
        width, height = page.js(f"[{PLOT}.naturalWidth, {PLOT}.naturalHeight]")
    assert heading and heading.startswith("Quality report: run-")  # the artifact, rendered
    assert width > 1000 and height > 300, (width, height)  # a plot, not a broken image


def test_ephemeral_api_gives_a_flow_run_id_and_no_address(llm_server, tmp_path):
    """Without a server (the CLI's temporary local API) there is no UI to point to."""
    env = run_env(tmp_path / "home", llm_server)
    res = run_cli(str(WIKINEURAL_SAMPLE), "--to", "zh", "--shard-size", "10", "--json", env=env)
    summary = summary_of(res)
    assert UUID(summary["flow_run_id"]) and summary["flow_run_url"] is None
    assert summary["flow_run_name"] == f"{summary['run_id']} en→zh"

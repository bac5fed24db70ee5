"""Benchmark the `synthesize` flow under LLM faults and an outage; writes docs/benchmarks-faults.md.

Input: the real WikiNEuRal English validation sentences cycled up to N instances (as in
``bench_flow.py``: copies get new ids and a suffix, so every instance costs requests).
The LLM is the project's test server in its own process, with a service time per request.
Scenarios, each in a fresh home (no reply cache), one flow run en -> zh on the thread
runner:

- ``fault-free``: no faults;
- ``fault-mix``: 10 % HTTP 500, 3 % HTTP 429 with ``Retry-After: 1``, 5 % hangs (300 s, or
  until the client gives up), 5 % invalid JSON, 2 % dropped connections;
- ``outage-60s``: the fault mix, and the server down for 60 s (connections refused) from
  the request that is one third of the fault-free run's requests;
- ``outage-60s-rerun``: the same command again in the same home after that run.

Measured per scenario: wall time of the flow call, requests the server received, slot
utilisation while the run sent requests, peak requests held at the server, replies the
server answered twice (paid twice), rows by status, failed rows, and the run's own
counters (requests, retries, timeouts) next to the server's.

    .venv/bin/python benchmarks/bench_faults.py --n 3000 --service-time 0.5
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_flow import make_source  # noqa: E402

MIX = "500=0.10,429=0.03,hang=0.05,malformed_json=0.05,reset=0.02"


def start_server(args, *extra: str) -> tuple[subprocess.Popen, str]:
    """The test LLM server in its own process; returns it and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "parallelner.testing.openai_server", "--port", "0",
         "--service-time", str(args.service_time), "--capacity", str(args.capacity),
         "--hang-s", "300", "--seed", str(args.seed), *extra],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    line = proc.stdout.readline()
    if "listening on" not in line:
        raise RuntimeError(f"test server did not start: {line!r}")
    return proc, line.split("listening on", 1)[1].strip()


def server_stats(base_url: str, reset: bool = False) -> dict[str, Any]:
    url = base_url.rsplit("/v1", 1)[0] + ("/reset" if reset else "/stats")
    req = urllib.request.Request(url, data=b"" if reset else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def run_once(
    src: Path, home: Path, base_url: str, args, extra_config: dict[str, Any]
) -> dict[str, Any]:
    from flows.synthesize import make_task_runner, synthesize

    config = {
        "home": str(home),
        "llm_base_url": base_url,
        "llm_model": "test-model",
        "llm_max_in_flight": args.max_in_flight,
        "shard_size": args.shard_size,
        "workers": args.workers,
        **extra_config,
    }
    flow = synthesize.with_options(task_runner=make_task_runner("threads", args.workers))
    before = server_stats(base_url, reset=True)  # counters and the active window restart
    t0 = time.monotonic()
    summary = flow(sources=[str(src)], tgt_lang="zh", config=config)
    wall = time.monotonic() - t0
    after = server_stats(base_url)
    active = after["active_wall_s"] or 1e-9
    usage = summary["usage"]
    return {
        "wall_s": round(wall, 1),
        "instances": summary["instances"],
        "server_requests": after["requests"] - before["requests"],
        "run_requests": usage.get("requests", 0),
        "run_retries": usage.get("retries", 0),
        "run_timeouts": usage.get("timeouts", 0),
        "run_transient_failures": usage.get("transient_failures", 0),
        "latency_p99_s": usage.get("latency_p99_s"),
        "run_hedges": usage.get("hedges", 0),
        "utilisation": round(
            (after["busy_slot_s"] - before["busy_slot_s"]) / (args.max_in_flight * active), 4
        ),
        "useful_utilisation": round(
            (
                after["busy_slot_s"]
                - before["busy_slot_s"]
                - (after["hung_slot_s"] - before["hung_slot_s"])
            )
            / (args.max_in_flight * active),
            4,
        ),  # fmt: skip
        "hung_slot_s": round(after["hung_slot_s"] - before["hung_slot_s"], 1),
        "max_concurrent": after["max_concurrent"],
        "repeated_answers": after["repeated_answers"] - before["repeated_answers"],
        "counts": summary["counts"],
        "failed": summary["counts"].get("failed", 0),
        "unfinished": summary.get("unfinished", {}),
        "reasons_failed": {
            k: v for k, v in summary["reasons"].items() if k.startswith(("llm_", "reply_"))
        },
    }


def scenario(
    name: str,
    src: Path,
    root: Path,
    args,
    *server_args: str,
    rerun: bool = False,
    config: dict[str, Any] | None = None,
):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # the ephemeral API, before the clock
        client.hello()
    proc, url = start_server(args, *server_args)
    try:
        home = root / name / "home"
        out = {name: run_once(src, home, url, args, config or {})}
        print(name, json.dumps(out[name]), flush=True)
        if rerun:
            out[f"{name}-rerun"] = run_once(src, home, url, args, config or {})
            print(f"{name}-rerun", json.dumps(out[f"{name}-rerun"]), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return out


def render(results: dict[str, dict[str, Any]], args) -> str:
    cols = [
        ("wall_s", "wall s"),
        ("server_requests", "requests (server)"),
        ("run_requests", "requests (run says)"),
        ("run_retries", "retries"),
        ("run_timeouts", "timeouts"),
        ("run_hedges", "hedges"),
        ("utilisation", "slots busy"),
        ("useful_utilisation", "slots busy with work"),
        ("max_concurrent", "peak at server"),
        ("repeated_answers", "replies paid twice"),
        ("failed", "failed rows"),
        ("unfinished", "unfinished"),
    ]
    lines = [
        "| scenario | " + " | ".join(c[1] for c in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for name, r in results.items():
        cells = []
        for k, _ in cols:
            v = r.get(k, "")
            cells.append(json.dumps(v) if isinstance(v, dict) else str(v))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--service-time", type=float, default=0.5)
    ap.add_argument("--capacity", type=int, default=64)
    ap.add_argument("--max-in-flight", type=int, default=64)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--outage-s", type=float, default=60.0)
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--results", type=Path, default=REPO / "docs" / "benchmarks-faults.json")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    results: dict[str, Any] = {}
    if args.results.exists():
        results = json.loads(args.results.read_text())
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        root = Path(tmp)
        src = root / "source.jsonl"
        make_source(args.n, src)
        if not only or "fault-free" in only:
            results.update(scenario("fault-free", src, root, args))
        if not only or "fault-mix" in only:
            results.update(scenario("fault-mix", src, root, args, "--fault-mix", MIX))
        if not only or "fault-mix-min2s" in only:
            results.update(
                scenario(
                    "fault-mix-min2s",
                    src,
                    root,
                    args,
                    "--fault-mix",
                    MIX,
                    config={"llm_timeout_min_s": 2.0},
                )  # fmt: skip
            )
        if not only or "outage-60s" in only:
            ref = results.get("fault-free", {}).get("server_requests") or 2 * args.n
            results.update(
                scenario(
                    "outage-60s",
                    src,
                    root,
                    args,
                    "--fault-mix",
                    MIX,
                    "--outage-after",
                    str(ref // 3),
                    "--outage-s",
                    str(args.outage_s),
                    rerun=True,
                )  # fmt: skip
            )
    meta = {
        "n": args.n,
        "service_time": args.service_time,
        "capacity": args.capacity,
        "max_in_flight": args.max_in_flight,
        "workers": args.workers,
        "shard_size": args.shard_size,
        "fault_mix": MIX,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "taken": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for r in results.values():
        if isinstance(r, dict) and "wall_s" in r:
            r.setdefault("meta", meta)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    print(render({k: v for k, v in results.items() if "wall_s" in v}, args))


if __name__ == "__main__":
    main()

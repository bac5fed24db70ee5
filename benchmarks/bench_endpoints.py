"""Benchmark the `synthesize` flow against several LLM endpoints; writes docs/benchmarks-endpoints.md.

Input: the real WikiNEuRal English validation sentences cycled up to N instances (as in
``bench_flow.py``: copies get new ids and a suffix, so every instance costs requests). The
LLM endpoints are the project's stand-in server, each in its own process, ``capacity``
slots x ``service_time`` seconds per request (64 x 1 s: 64 requests/s each at best).
Scenarios, each in a fresh home (no reply cache), one flow run en -> zh on the thread
runner with the same settings (one global in-flight bound):

- ``one-endpoint``: one URL: the reference, measured in the same script run;
- ``two-endpoints``: two URLs (``llm_base_url: A,B``);
- ``two-endpoints-kill-30s``: two URLs, endpoint A down for 30 s (connections refused)
  from the request that is half of A's share in ``two-endpoints`` (the middle of the run).

Measured per scenario: wall time of the flow call; per endpoint the requests it received,
its slot utilisation while the run kept it busy (busy slot-seconds / (capacity x its
window from first request to last answer)) and its throughput; the run's own per-endpoint
summary (``usage.endpoints``); rows, failed rows and what is unfinished; the client
process's CPU seconds per request; the load average before and after (the machine's
cores are shared).

    .venv/bin/python benchmarks/bench_endpoints.py --n 3000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_faults import server_stats  # noqa: E402
from benchmarks.bench_flow import make_source  # noqa: E402


def start_server(args, *extra: str):
    """A stand-in endpoint in its own process (``bench_faults.start_server``'s set-up)."""
    from benchmarks.bench_faults import start_server as start

    return start(args, *extra)


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_once(src: Path, home: Path, urls: list[str], args) -> dict[str, Any]:
    from flows.synthesize import make_task_runner, synthesize

    config = {
        "home": str(home),
        "llm_base_url": ",".join(urls),
        "llm_model": "test-model",
        "llm_max_in_flight": args.max_in_flight,
        "shard_size": args.shard_size,
        "workers": args.workers,
    }
    flow = synthesize.with_options(task_runner=make_task_runner("threads", args.workers))
    before = {u: server_stats(u, reset=True) for u in urls}
    load_before = os.getloadavg()
    cpu0, t0 = _cpu_s(), time.monotonic()
    summary = flow(sources=[str(src)], tgt_lang="zh", config=config)
    wall = time.monotonic() - t0
    cpu = _cpu_s() - cpu0
    load_after = os.getloadavg()
    per = []
    for u in urls:
        s = server_stats(u)
        active = s["active_wall_s"] or 1e-9
        busy = s["busy_slot_s"] - before[u]["busy_slot_s"]
        per.append(
            {
                "url": u,
                "requests": s["requests"],
                "answered_per_s": round(busy / args.service_time / active, 1),
                "utilisation": round(busy / (s["capacity"] * active), 4),
                "active_s": round(active, 1),
                "max_concurrent": s["max_concurrent"],
                "repeated_answers": s["repeated_answers"],
            }
        )
    usage = summary["usage"]
    requests = sum(p["requests"] for p in per)
    return {
        "wall_s": round(wall, 1),
        "instances": summary["instances"],
        "rows": sum(summary["counts"].values()),
        "counts": summary["counts"],
        "failed": summary["counts"].get("failed", 0),
        "unfinished": summary.get("unfinished", {}),
        "requests": requests,
        "requests_per_s": round(requests / wall, 1),
        "run_requests": usage.get("requests", 0),
        "run_retries": usage.get("retries", 0),
        "run_failures": usage.get("failures", 0),
        "client_cpu_ms_per_request": round(1000 * cpu / max(1, requests), 2),
        "client_cpu_share": round(cpu / wall, 2),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "servers": per,
        "summary_endpoints": usage.get("endpoints"),
    }


def scenario(name: str, src: Path, root: Path, args, n_urls: int, kill_after: int | None):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # the ephemeral API, before the clock
        client.hello()
    procs = []
    try:
        urls = []
        for i in range(n_urls):
            extra: list[str] = []
            if i == 0 and kill_after:
                extra = ["--outage-after", str(kill_after), "--outage-s", str(args.kill_s)]
            proc, url = start_server(args, *extra)
            procs.append(proc)
            urls.append(url)
        out = run_once(src, root / name / "home", urls, args)
        print(name, json.dumps(out), flush=True)
        return out
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


def render(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| scenario | wall s | rows (failed) | requests | req/s | endpoint | its requests "
        "| its utilisation | its req/s | peak at it | client CPU ms/req | load avg after |",
        "|---" * 12 + "|",
    ]
    for name, r in results.items():
        for i, s in enumerate(r["servers"]):
            head = (
                [name, r["wall_s"], f"{r['rows']} ({r['failed']})", r["requests"],
                 r["requests_per_s"]]
                if i == 0 else ["", "", "", "", ""]
            )  # fmt: skip
            tail = [r["client_cpu_ms_per_request"], r["loadavg_after"][0]] if i == 0 else ["", ""]
            cells = [*head, chr(ord("A") + i), s["requests"], s["utilisation"],
                     s["answered_per_s"], s["max_concurrent"], *tail]  # fmt: skip
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--service-time", type=float, default=1.0)
    ap.add_argument("--capacity", type=int, default=64)
    ap.add_argument("--max-in-flight", type=int, default=128)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--shard-size", type=int, default=500)
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--kill-s", type=float, default=30.0)
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--results", type=Path, default=REPO / "docs" / "benchmarks-endpoints.json")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    results: dict[str, Any] = {}
    if args.results.exists():
        results = json.loads(args.results.read_text())
    with tempfile.TemporaryDirectory(prefix="bench-endpoints-") as tmp:
        root = Path(tmp)
        src = root / "source.jsonl"
        make_source(args.n, src)
        if not only or "one-endpoint" in only:
            results["one-endpoint"] = scenario("one-endpoint", src, root, args, 1, None)
        if not only or "two-endpoints" in only:
            results["two-endpoints"] = scenario("two-endpoints", src, root, args, 2, None)
        if not only or "two-endpoints-kill-30s" in only:
            share = (results.get("two-endpoints") or {}).get("servers", [{}])[0].get("requests")
            kill_after = (share or args.n) // 2
            results["two-endpoints-kill-30s"] = scenario(
                "two-endpoints-kill-30s", src, root, args, 2, kill_after
            )
            results["two-endpoints-kill-30s"]["kill_after_request"] = kill_after
    meta = {
        "n": args.n,
        "service_time": args.service_time,
        "capacity": args.capacity,
        "max_in_flight": args.max_in_flight,
        "workers": args.workers,
        "shard_size": args.shard_size,
        "kill_s": args.kill_s,
        "cpus": os.cpu_count(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "taken": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for r in results.values():
        r.setdefault("meta", meta)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    print(render(results))


if __name__ == "__main__":
    main()

"""Client throughput at zero LLM latency: the whole pipeline against a bare HTTP loop.

One stand-in server (the project's test server, ``parallelner.testing.openai_server``,
zero service time, as many slots as requests in flight) runs in its own process. Against
that same server, in one run:

- **bare loop** (the ceiling): a minimal asyncio HTTP/1.1 client, one keep-alive
  connection per slot, ``--in-flight`` of them, sending the very request bodies the
  pipeline sends (captured from a warm-up run) as fast as the server answers; run just
  before and just after the pipeline (the machine is shared: its load drifts), the
  ceiling is the mean of the two;
- **pipeline**: ``plan_run``, ``process_shard`` on a thread pool through one
  ``LLMRuntime`` (the path the flow takes, without Prefect), ``finalize_run``, on
  ``--n`` instances (the real WikiNEuRal sentences cycled with new ids, as
  ``bench_flow.py`` does, so every instance costs real requests).

Reported for each: requests/s (requests the server received / wall time), client CPU
ms per request (``time.process_time`` of this process, all threads; plus the CPU of any
child process but the server), the server's CPU ms per request, and the pipeline's ratio
to the ceiling. Results go into docs/benchmarks-throughput.json under ``--name``.

    .venv/bin/python benchmarks/bench_throughput.py --name after --n 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_flow import make_source, server_stats, start_server  # noqa: E402


def capture_bodies(work: Path, n: int = 200) -> list[dict[str, Any]]:
    """The chat request bodies the pipeline sends for ``n`` instances (a warm-up run
    against an in-process test server, which also pays the one-time imports)."""
    from parallelner import pipeline
    from parallelner.settings import load_settings
    from parallelner.testing.openai_server import OpenAIServer

    src = work / "warmup.jsonl"
    make_source(n, src)
    with OpenAIServer(capacity=64) as srv:
        settings = load_settings(
            None, home=work / "home-warmup", llm_base_url=srv.base_url, llm_model="test-model"
        )
        plan = pipeline.plan_run([src], "zh", settings)
        with pipeline.LLMRuntime(settings) as runtime:
            results = [pipeline.process_shard(s, plan, settings, runtime) for s in plan.shards]
        pipeline.finalize_run(plan, results, settings)
        return [r["body"] for r in srv.requests if r["path"].endswith("chat/completions")]


def _cpu_children(skip_pid: int) -> float:
    """CPU seconds of this process's children (the server excluded)."""
    import psutil

    total = 0.0
    for c in psutil.Process().children(recursive=True):
        if c.pid == skip_pid:
            continue
        with contextlib.suppress(psutil.Error):
            total += sum(c.cpu_times()[:2])
    return total


def _server_cpu(pid: int) -> float:
    import psutil

    return sum(psutil.Process(pid).cpu_times()[:2])


async def _bare(host: str, port: int, path: str, bodies: list[bytes], total: int, conns: int):
    """``total`` POSTs over ``conns`` keep-alive connections, as fast as answered."""
    sent = 0
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    head += "Authorization: Bearer EMPTY\r\n"

    async def worker() -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        try:
            while sent < total:
                body = bodies[sent % len(bodies)]
                sent += 1
                writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                status = await reader.readline()
                if b" 200 " not in status:
                    raise RuntimeError(f"bare loop: {status!r}")
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                json.loads(await reader.readexactly(length))
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))


def run_bare(base_url: str, server_pid: int, bodies: list[dict], total: int, conns: int):
    """The ceiling: requests/s and client CPU of the bare loop."""
    from urllib.parse import urlsplit

    u = urlsplit(base_url)
    raw = [json.dumps(b, ensure_ascii=False).encode() for b in bodies]
    s0, srv0 = server_stats(base_url)["requests"], _server_cpu(server_pid)
    t0, cpu0 = time.monotonic(), time.process_time()
    asyncio.run(_bare(u.hostname, u.port, u.path + "/chat/completions", raw, total, conns))
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    n = server_stats(base_url)["requests"] - s0
    return {
        "requests": n,
        "wall_s": round(wall, 2),
        "requests_per_s": round(n / wall, 1),
        "client_cpu_ms_per_request": round(1000 * cpu / n, 3),
        "server_cpu_ms_per_request": round(1000 * (_server_cpu(server_pid) - srv0) / n, 3),
    }


def run_pipeline(src: Path, home: Path, base_url: str, server_pid: int, args) -> dict[str, Any]:
    """plan, shards on a thread pool through one runtime, finalize; instrumented."""
    from parallelner import pipeline
    from parallelner.settings import load_settings

    settings = load_settings(
        None,
        home=home,
        llm_base_url=base_url,
        llm_model="test-model",
        llm_max_in_flight=args.in_flight,
        shard_size=args.shard_size,
        workers=args.workers,
    )
    s0, srv0 = server_stats(base_url)["requests"], _server_cpu(server_pid)
    kids0 = _cpu_children(server_pid)
    t0, cpu0 = time.monotonic(), time.process_time()
    plan = pipeline.plan_run([src], "zh", settings)
    t1, cpu1 = time.monotonic(), time.process_time()
    with pipeline.LLMRuntime(settings) as runtime, ThreadPoolExecutor(args.workers) as pool:
        results = list(
            pool.map(lambda s: pipeline.process_shard(s, plan, settings, runtime), plan.shards)
        )
    t2, cpu2 = time.monotonic(), time.process_time()
    summary = pipeline.finalize_run(plan, results, settings)
    t3, cpu3 = time.monotonic(), time.process_time()
    kids = _cpu_children(server_pid) - kids0
    n = server_stats(base_url)["requests"] - s0
    shard_cpu = cpu2 - cpu1 + kids
    return {
        "instances": plan.instances,
        "requests": n,
        "requests_per_instance": round(n / args.n, 3),
        "plan_s": round(t1 - t0, 2),
        "shards_s": round(t2 - t1, 2),
        "finalize_s": round(t3 - t2, 2),
        "wall_s": round(t3 - t0, 2),
        # the shard phase is where requests are made: the rate the client sustains
        "requests_per_s": round(n / (t2 - t1), 1),
        "requests_per_s_whole_run": round(n / (t3 - t0), 1),
        "instances_per_s_whole_run": round(args.n / (t3 - t0), 1),
        "client_cpu_ms_per_request": round(1000 * shard_cpu / n, 3),
        "client_cpu_ms_per_request_whole_run": round(1000 * (cpu3 - cpu0 + kids) / n, 3),
        "server_cpu_ms_per_request": round(1000 * (_server_cpu(server_pid) - srv0) / n, 3),
        "counts": summary.counts,
        "usage": summary.usage,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", required=True, help="scenario name (a key in the results)")
    ap.add_argument("--n", type=int, default=2000, help="instances for the pipeline")
    ap.add_argument("--in-flight", type=int, default=256)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--shard-size", type=int, default=500)
    ap.add_argument("--bare-requests", type=int, default=8000, help="per bare-loop run")
    ap.add_argument("--results", type=Path, default=REPO / "docs" / "benchmarks-throughput.json")
    args = ap.parse_args()

    load_before = [round(x, 2) for x in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    src = work / "source.jsonl"
    make_source(args.n, src)
    bodies = capture_bodies(work)
    server, base_url = start_server(0.0, args.in_flight)
    try:
        total = args.bare_requests
        bare_before = run_bare(base_url, server.pid, bodies, total, args.in_flight)
        print("bare", json.dumps(bare_before), flush=True)
        pipe = run_pipeline(src, work / "home", base_url, server.pid, args)
        print("pipeline", json.dumps(pipe), flush=True)
        bare_after = run_bare(base_url, server.pid, bodies, total, args.in_flight)
        print("bare", json.dumps(bare_after), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    ceiling = (bare_before["requests_per_s"] + bare_after["requests_per_s"]) / 2
    result = {
        "bare": bare_before,
        "bare_after": bare_after,
        "pipeline": pipe,
        "ratio_to_bare": round(pipe["requests_per_s"] / ceiling, 3),
        "n": args.n,
        "in_flight": args.in_flight,
        "workers": args.workers,
        "shard_size": args.shard_size,
        "load_avg_before": load_before,
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
    }
    print(
        json.dumps({k: result[k] for k in ("ratio_to_bare", "load_avg_before", "load_avg_after")})
    )
    results = json.loads(args.results.read_text()) if args.results.is_file() else {}
    results[args.name] = result
    args.results.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

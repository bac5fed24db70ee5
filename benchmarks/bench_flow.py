"""Benchmark the `synthesize` Prefect flow at the paper's size; writes docs/benchmarks-flow.md.

Input: the real WikiNEuRal English validation sentences (data/sources) cycled up to N
instances (default 257,190, the size of ParallelNER). Copy k > 0 of a sentence gets the id
``<id>~k`` and " (k)" appended to its text (entity offsets unchanged), so that neither the
LLM reply cache nor the duplicate check treats copies as repeats: every instance costs
real requests. The LLM is the project's test server (``parallelner.testing.openai_server``)
in its own process, with a service time per request and a number of slots.

Measured, for one flow run en -> zh on the thread task runner, in this process:
- wall time of the flow call, peak RSS of this process (the flow and its shard threads)
  and of the ephemeral Prefect API server (a child process);
- time spent in Prefect machinery: the flow's wall time minus the time the library spent
  (``plan_run``, ``finalize_run`` and every moment at least one ``process_shard`` call was
  running); ``--baseline`` also runs the same work without Prefect for a direct comparison;
- the test server's slot utilisation over the whole flow and in 10-second windows;
- LLM requests per instance (translate + repair + back-translate).

    .venv/bin/python benchmarks/bench_flow.py --name full-0s            # 257,190, 0 s
    .venv/bin/python benchmarks/bench_flow.py --name util-1s --n 4000 --service-time 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SOURCE = REPO / "data" / "sources" / "wikineural-en-val.conllu"
PAPER_SIZE = 257_190


def make_source(n: int, path: Path) -> int:
    """Write ``n`` instances (the real sentences cycled, new ids) as span JSONL."""
    from parallelner.readers import read_instances
    from parallelner.writers.spanjsonl import write_span_jsonl

    real = list(read_instances(SOURCE))

    def cycled():
        for i in range(n):
            k, inst = divmod(i, len(real))
            inst = real[inst]
            if k:
                inst = inst.model_copy(
                    update={"id": f"{inst.id}~{k}", "text": f"{inst.text} ({k})"}
                )
            yield inst

    return write_span_jsonl(cycled(), path)


def start_server(service_time: float, capacity: int) -> tuple[subprocess.Popen, str]:
    """The test LLM server in its own process; returns it and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "parallelner.testing.openai_server", "--port", "0",
         "--service-time", str(service_time), "--capacity", str(capacity)],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    line = proc.stdout.readline()  # "listening on http://127.0.0.1:PORT/v1"
    if "listening on" not in line:
        raise RuntimeError(f"test server did not start: {line!r}")
    return proc, line.split("listening on", 1)[1].strip()


def server_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.rsplit("/v1", 1)[0] + "/stats", timeout=10) as r:
        return json.loads(r.read())


class Sampler(threading.Thread):
    """Every second: RSS of this process and its children, the server's counters."""

    def __init__(self, base_url: str):
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process()
        self.base_url = base_url
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def sample(self) -> None:
        children, child_cpu = 0, 0.0
        for c in self.proc.children(recursive=True):
            try:
                if "openai_server" not in " ".join(c.cmdline()):
                    children = max(children, c.memory_info().rss)
                    child_cpu += sum(c.cpu_times()[:2])
            except Exception:  # noqa: BLE001 - a child that just exited
                pass
        s = server_stats(self.base_url)
        self.samples.append(
            {
                "t": time.monotonic(),
                "rss": self.proc.memory_info().rss,
                "child_rss": children,
                "child_cpu": child_cpu,
                "cpu": sum(self.proc.cpu_times()[:2]),
                "busy": s["busy_slot_s"],
                "requests": s["requests"],
                "server_wall": s["wall_s"],
            }
        )

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.sample()


class Intervals:
    """Start/end times of the library calls the flow makes (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls: dict[str, list[tuple[float, float]]] = {}

    def wrap(self, module, name: str) -> None:
        fn = getattr(module, name)

        def timed(*args, **kwargs):
            t0 = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                with self.lock:
                    self.calls.setdefault(name, []).append((t0, time.monotonic()))

        setattr(module, name, timed)

    def total(self, name: str) -> float:
        return sum(b - a for a, b in self.calls.get(name, []))

    def union(self, name: str) -> float:
        """Seconds during which at least one ``name`` call was running."""
        spans = sorted(self.calls.get(name, []))
        total, end = 0.0, float("-inf")
        for a, b in spans:
            if b > end:
                total += b - max(a, end)
                end = b
        return total


def windows(
    samples: list[dict[str, Any]], capacity: int, t0: float, t1: float, width: float = 10.0
) -> list[float]:
    """Slot utilisation in consecutive windows of ``width`` seconds between t0 and t1."""
    pts = [s for s in samples if t0 <= s["t"] <= t1]
    out, start = [], 0
    for i in range(1, len(pts)):
        if pts[i]["t"] - pts[start]["t"] >= width:
            busy = pts[i]["busy"] - pts[start]["busy"]
            out.append(busy / (capacity * (pts[i]["server_wall"] - pts[start]["server_wall"])))
            start = i
    return out


def run_flow(src: Path, home: Path, base_url: str, args) -> dict[str, Any]:
    """One `synthesize` run on the thread runner, instrumented."""
    from flows.synthesize import make_task_runner, synthesize
    from parallelner import pipeline

    iv = Intervals()
    for name in ("plan_run", "process_shard", "finalize_run"):
        iv.wrap(pipeline, name)
    config = {
        "home": str(home),
        "llm_base_url": base_url,
        "llm_model": "test-model",
        "llm_max_in_flight": args.max_in_flight,
        "shard_size": args.shard_size,
        "workers": args.workers,
    }
    flow = synthesize.with_options(task_runner=make_task_runner("threads", args.workers))
    # the ephemeral API server starts once per process (tens of seconds here): start it
    # before the clock, and report it on its own
    from prefect.client.orchestration import get_client

    t = time.monotonic()
    with get_client(sync_client=True) as client:
        client.hello()
    api_start = time.monotonic() - t
    sampler = Sampler(base_url)
    sampler.sample()
    sampler.start()
    t0 = time.monotonic()
    summary = flow(sources=[str(src)], tgt_lang="zh", config=config)
    t1 = time.monotonic()
    sampler.sample()
    sampler.stop.set()
    wall = t1 - t0
    library = iv.total("plan_run") + iv.total("finalize_run") + iv.union("process_shard")
    first, last = sampler.samples[0], sampler.samples[-1]
    util = (last["busy"] - first["busy"]) / (
        args.capacity * (last["server_wall"] - first["server_wall"])
    )
    shard_times = sorted(b - a for a, b in iv.calls["process_shard"])
    per_window = windows(sampler.samples, args.capacity, t0, t1)
    return {
        "api_start_s": round(api_start, 1),
        "wall_s": round(wall, 1),
        "plan_s": round(iv.total("plan_run"), 1),
        "finalize_s": round(iv.total("finalize_run"), 1),
        "shards": len(shard_times),
        "shard_busy_union_s": round(iv.union("process_shard"), 1),
        "shard_median_s": round(shard_times[len(shard_times) // 2], 2),
        "orchestration_s": round(wall - library, 1),
        "orchestration_share": round((wall - library) / wall, 4),
        "cpu_s": round(last["cpu"] - first["cpu"], 1),
        "prefect_server_cpu_s": round(last["child_cpu"] - first["child_cpu"], 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "prefect_server_peak_rss_mb": round(max(s["child_rss"] for s in sampler.samples) / 2**20),
        "requests": last["requests"] - first["requests"],
        "requests_per_instance": round(
            (last["requests"] - first["requests"]) / summary["instances"], 3
        ),
        "utilisation": round(util, 4),
        "max_concurrent": server_stats(base_url).get("max_concurrent"),  # peak at the server
        "utilisation_10s_min": round(min(per_window), 4) if per_window else None,
        "utilisation_10s_windows": [round(u, 3) for u in per_window],
        "instances": summary["instances"],
        "instances_per_s": round(summary["instances"] / wall, 1),
        "counts": summary["counts"],
    }


def run_plain(src: Path, home: Path, base_url: str, args) -> dict[str, Any]:
    """The same work without Prefect: plan, a thread pool of shards, finalize."""
    from parallelner import pipeline
    from parallelner.settings import load_settings

    settings = load_settings(
        None,
        home=home,
        llm_base_url=base_url,
        llm_model="test-model",
        llm_max_in_flight=args.max_in_flight,
        shard_size=args.shard_size,
        workers=args.workers,
    )
    t0, cpu0 = time.monotonic(), time.process_time()
    plan = pipeline.plan_run([src], "zh", settings)
    with pipeline.LLMRuntime(settings) as runtime, ThreadPoolExecutor(args.workers) as pool:
        results = list(
            pool.map(lambda s: pipeline.process_shard(s, plan, settings, runtime), plan.shards)
        )
    pipeline.finalize_run(plan, results, settings)
    return {
        "plain_wall_s": round(time.monotonic() - t0, 1),
        "plain_cpu_s": round(time.process_time() - cpu0, 1),
    }


def render(results: dict[str, dict[str, Any]]) -> str:
    """docs/benchmarks-flow.md: one row per scenario, newest numbers."""
    cols = [
        ("instances", "instances"),
        ("service_time", "service s"),
        ("capacity", "slots"),
        ("max_in_flight", "in flight"),
        ("workers", "workers"),
        ("shard_size", "shard"),
        ("wall_s", "wall s"),
        ("instances_per_s", "inst/s"),
        ("peak_rss_mb", "RSS MB"),
        ("prefect_server_peak_rss_mb", "API server MB"),
        ("orchestration_share", "Prefect share"),
        ("plain_wall_s", "no-Prefect wall s"),
        ("requests_per_instance", "req/inst"),
        ("utilisation", "slot util"),
        ("utilisation_10s_min", "min 10 s util"),
    ]
    lines = [
        "| scenario | " + " | ".join(c[1] for c in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(str(r.get(k, "")) for k, _ in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", required=True, help="scenario name (a row in the results)")
    ap.add_argument("--n", type=int, default=PAPER_SIZE)
    ap.add_argument("--service-time", type=float, default=0.0)
    ap.add_argument("--capacity", type=int, default=64)
    ap.add_argument("--max-in-flight", type=int, default=64)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--baseline", action="store_true", help="also run without Prefect")
    ap.add_argument("--results", type=Path, default=REPO / "docs" / "benchmarks-flow.json")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-flow-"))
    os.environ["PREFECT_HOME"] = str(work / "prefect")
    (work / "prefect").mkdir()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    src = work / "source.jsonl"
    t = time.monotonic()
    make_source(args.n, src)
    print(f"source: {args.n} instances in {time.monotonic() - t:.1f} s -> {src}", flush=True)
    server, base_url = start_server(args.service_time, args.capacity)
    try:
        # warm-up on 200 other instances, so that neither measurement pays the one-time
        # imports (stages, langdetect profiles, pyiceberg, matplotlib)
        make_source(200, work / "warmup.jsonl")
        run_plain(work / "warmup.jsonl", work / "home-warmup", base_url, args)
        result = run_flow(src, work / "home", base_url, args)
        print(json.dumps(result), flush=True)
        if args.baseline:
            result.update(run_plain(src, work / "home-plain", base_url, args))
            print(json.dumps({"plain_wall_s": result["plain_wall_s"]}), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    result.update(
        {
            "service_time": args.service_time,
            "capacity": args.capacity,
            "max_in_flight": args.max_in_flight,
            "workers": args.workers,
            "shard_size": args.shard_size,
            "machine": f"{platform.machine()} {os.cpu_count()} cores",
            "date": datetime.now(UTC).isoformat(timespec="minutes"),
        }
    )
    results = json.loads(args.results.read_text()) if args.results.is_file() else {}
    results[args.name] = result
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    md = REPO / "docs" / "benchmarks-flow.md"
    text = md.read_text() if md.is_file() else ""
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    table = f"{begin}\n{render(results)}\n{end}"
    if begin in text:
        text = text.split(begin)[0] + table + text.split(end, 1)[1]
    else:
        text = text + "\n" + table + "\n"
    md.write_text(text)
    print(render(results))


if __name__ == "__main__":
    main()

"""`parallelner run` as users run it, at N instances, against the zero-latency stand-in.

The realistic path: the stand-in (``parallelner.testing.openai_server``, its own process,
256 slots, no service time) answers every request right, so rows are accepted after
about two requests each. Input: the real WikiNEuRal sentences cycled to N (see
``bench_flow.make_source``). The CLI runs with its defaults (the temporary Prefect API,
shards of 1,000, worker processes chosen for the run's size) and ``--max-in-flight 256``.

Printed, one JSON line per run: wall time, instances/s, requests per instance, the peak
RSS of the client (the CLI process and its worker processes, summed: pages the workers
share are counted once per process; and their proportional set size, PSS, which counts a
shared page once) and of the Prefect API server apart, sampled every
second, each process's own peak, and the highest 1-minute load average seen.

    .venv/bin/python benchmarks/bench_run_cli.py 25719 257190
    .venv/bin/python benchmarks/bench_run_cli.py 25719 --processes 0   # threads only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from bench_flow import make_source, server_stats, start_server  # noqa: E402


def _kind(cmd: str) -> str | None:
    if "openai_server" in cmd:
        return None  # the stand-in LLM: not the client
    if "prefect" in cmd and "uvicorn" in cmd:
        return "prefect_api"
    if "spawn_main" in cmd:
        return "workers"
    if "resource_tracker" in cmd:
        return "tracker"
    return "other"


def cli_command(src: Path, home: Path, url: str, extra: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    """`parallelner run` as measured: defaults, the stand-in at ``url``, 256 in flight."""
    return [str(REPO / ".venv" / "bin" / "parallelner"), "run", str(src), "--to", "zh",
            "--home", str(home), "--llm-base-url", url, "--llm-model", "test-model",
            "--max-in-flight", "256", "--json", *extra]  # fmt: skip


def run_once(n: int, url: str, work: Path, extra: list[str], timeline: Path | None = None) -> dict:
    src = work / f"source-{n}.jsonl"
    if not src.exists():
        make_source(n, src)
    home = work / f"home-{n}-{len(list(work.glob('home-*')))}"
    before = server_stats(url)["requests"]
    started = time.time()
    cmd = cli_command(src, home, url, extra)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
    )
    peak: dict[str, int] = {"client": 0, "prefect_api": 0}
    loads: list[float] = []
    samples: list[dict] = []

    def sample() -> None:
        while proc.poll() is None:
            try:
                me = psutil.Process(proc.pid)
                per = {"main": me.memory_info().rss}
                pss = me.memory_full_info().pss
                for child in me.children(recursive=True):
                    kind = _kind(" ".join(child.cmdline()))
                    if kind is not None:
                        per[kind] = per.get(kind, 0) + child.memory_info().rss
                        if kind != "prefect_api":
                            pss += child.memory_full_info().pss
                client = sum(v for k, v in per.items() if k != "prefect_api")
                peak["client"] = max(peak["client"], client)
                peak["client_pss"] = max(peak.get("client_pss", 0), pss)
                for k, v in per.items():
                    peak[k] = max(peak.get(k, 0), v)
                loads.append(os.getloadavg()[0])
                samples.append({"t": round(time.time() - started, 1), "pss": pss, **per})
            except psutil.Error:
                pass
            time.sleep(1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.time() - started
    asked = server_stats(url)["requests"] - before
    try:
        counts = json.loads(out)["counts"]
    except (json.JSONDecodeError, KeyError):
        counts = err[-800:]
    mb = {k: round(v / 2**20) for k, v in peak.items()}
    if timeline is not None:
        timeline.mkdir(parents=True, exist_ok=True)
        with open(timeline / f"run-{n}{'-'.join(['', *extra])}.jsonl", "w") as f:
            for row in samples:
                f.write(
                    json.dumps({k: v if k == "t" else round(v / 2**20) for k, v in row.items()})
                    + "\n"
                )
    return {
        "instances": n,
        "args": extra,
        "wall_s": round(wall, 1),
        "instances_per_s": round(n / wall, 1),
        "requests_per_instance": round(asked / n, 3),
        "peak_client_rss_mb": mb.pop("client"),
        "peak_client_pss_mb": mb.pop("client_pss", None),
        "peak_prefect_api_rss_mb": mb.pop("prefect_api"),
        "peak_rss_mb_by_process": mb,
        "load_max": round(max(loads or [0.0]), 2),
        "rc": proc.returncode,
        "counts": counts,
    }


def plot_timelines(directory: Path) -> Path:
    """One panel per run in ``directory``: each client process's RSS stacked over time,
    the tree's PSS, the Prefect API apart, and the issue's 800 MB line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(directory.glob("run-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))
    fig, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 4), squeeze=False)
    for ax, path in zip(axes[0], runs, strict=True):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        t = [r["t"] for r in rows]
        parts = ["main", "workers", "tracker"]
        ax.stackplot(t, *[[r.get(k, 0) for r in rows] for k in parts], labels=parts, alpha=0.8)
        ax.plot(t, [r.get("pss", 0) for r in rows], color="black", lw=1, label="client PSS")
        ax.plot(t, [r.get("prefect_api", 0) for r in rows], "--", color="grey", lw=1,
                label="Prefect API (apart)")  # fmt: skip
        ax.axhline(800, color="red", lw=0.8, ls=":", label="800 MB")
        ax.set_title(f"parallelner run, {int(path.stem.split('-')[1]):,} instances")
        ax.set_xlabel("seconds")
        ax.set_ylabel("RSS, MB (stacked)")
        ax.set_ylim(0, 1000)
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    out = directory / "memory.png"
    fig.savefig(out, dpi=110)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("sizes", nargs="+", type=int, help="instances per run (e.g. 25719 257190)")
    ap.add_argument("--processes", help="passed to `parallelner run --processes`")
    ap.add_argument(
        "--timeline", type=Path, metavar="DIR",
        help="write each run's samples (MB of each process, every second) to DIR/run-N.jsonl"
        " and a plot of them to DIR/memory.png",
    )  # fmt: skip
    args = ap.parse_args()
    extra = ["--processes", args.processes] if args.processes is not None else []
    work = Path(tempfile.mkdtemp(prefix="bench-run-cli-"))
    server, url = start_server(0.0, 256)
    try:
        for n in args.sizes:
            print(json.dumps(run_once(n, url, work, extra, args.timeline)), flush=True)
    finally:
        server.terminate()
    if args.timeline is not None:
        print(f"memory over time: {plot_timelines(args.timeline)}")


if __name__ == "__main__":
    main()

"""Where `parallelner run`'s CPU goes, process by process: py-spy over the CLI and its
worker processes, samples grouped into the pipeline's parts.

Runs ``parallelner run`` as ``bench_run_cli.py`` does (``cli_command``) (the zero-latency stand-in in its
own process, the realistic path, the CLI's defaults) under ``py-spy record
--subprocesses --gil`` (only samples that hold the GIL: the time a process computes),
then gives each sample to the innermost frame of this project (or of Prefect) on its
stack and prints, for the CLI's main process and for the workers together, the share of
each part. Needs ``py-spy`` (``pip install py-spy``; ptrace allowed, as root here).

    .venv/bin/python benchmarks/profile_run.py 25719
    .venv/bin/python benchmarks/profile_run.py 25719 --raw out.txt   # keep the stacks
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from bench_flow import make_source, start_server  # noqa: E402
from bench_run_cli import cli_command  # noqa: E402

# (part, pattern on a frame's file): the first that matches the innermost frame wins
PARTS = [
    ("assess (quality checks)", r"(^|/)parallelner/(quality/|stages/assess\.py)"),
    ("project (span projection)", r"(^|/)parallelner/(align/|stages/project\.py)"),
    ("back-translate", r"(^|/)parallelner/stages/backtranslate\.py"),
    ("translate (prompt, reply)", r"(^|/)parallelner/(stages/translate\.py|prompts/)"),
    ("ladder, repair", r"(^|/)parallelner/stages/(ladder|repair)\.py"),
    ("request path (client, cache)", r"(^|/)parallelner/llm/"),
    ("records, Arrow, store", r"(^|/)parallelner/(records\.py|store/|storage\.py)"),
    ("reading input, shards", r"(^|/)parallelner/(readers/|shards\.py|writers/)"),
    ("stage chain", r"(^|/)parallelner/stages/"),
    ("worker plumbing, progress", r"(^|/)parallelner/(shardprocs|progress)\.py"),
    ("pipeline (plan, finalize)", r"(^|/)parallelner/pipeline\.py"),
    ("flow, CLI", r"(^|/)(flows|parallelner_cli)/"),
    ("Prefect", r"(^|/)prefect/"),
    ("other parallelner", r"(^|/)parallelner/"),
]
_FRAME = re.compile(r"\(([^():]+):\d+\)$")


def part_of(stack: list[str]) -> str:
    for frame in reversed(stack):  # innermost first
        m = _FRAME.search(frame)
        if not m:
            continue
        for part, pattern in PARTS:
            if re.search(pattern, m.group(1)):
                return part
    return "interpreter, libraries (no project frame)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("n", type=int, help="instances (e.g. 25719)")
    ap.add_argument("--rate", type=int, default=50, help="samples per second (default 50)")
    ap.add_argument("--raw", type=Path, help="keep py-spy's raw stacks here")
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    work = Path(tempfile.mkdtemp(prefix="profile-run-"))
    src = work / f"source-{args.n}.jsonl"
    make_source(args.n, src)
    raw = args.raw or work / "stacks.txt"
    server, url = start_server(0.0, 256)
    try:
        cmd = [spy, "record", "--subprocesses", "--gil", "--rate", str(args.rate),
               "--format", "raw", "--output", str(raw), "--",
               *cli_command(src, work / "home", url)]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
    finally:
        server.terminate()
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        # a child's stack starts with its parent's "process N:<command>" frame, then its own
        if "resource_tracker" in stack or "openai_server" in stack:
            continue
        kind = ("workers" if "spawn_main(" in stack
                else "prefect_api" if "uvicorn" in stack else "main")  # fmt: skip
        by_kind[kind][part_of(stack.split(";"))] += int(count)
    out = {}
    for kind, parts in sorted(by_kind.items()):
        total = sum(parts.values())
        out[kind] = {"samples": total, "seconds": round(total / args.rate, 1),
                     "share": {p: round(c / total, 3) for p, c in parts.most_common()}}  # fmt: skip
    print(json.dumps({"instances": args.n, "rate": args.rate, **out}, indent=1))


if __name__ == "__main__":
    main()

"""Projection speed: instances per second per core on the dev data (no LLM, no repair).

Goal: the whole ParallelNER set (257,190 pairs) projects in under 2 minutes on one core,
i.e. >= 2,143 pairs/s. Measured with CPU time of this single-threaded process
(``time.process_time``), so other load on the machine does not count against it, and
reported for three paths:

- ``pure, no mentions``: ``project_spans(source, tgt, lang, None)`` (the source mention
  is matched: the fuzzy windows run for most entities; ``--llm none``);
- ``pure, with mentions``: ``project_spans`` given translated mentions (the pipeline
  path; the gold target mentions stand in for what stage 1 returns);
- ``project_line``: the whole per-line path of ``parallelner project --llm none``
  (JSON parse, validation, projection, rendering, JSON dump).

    python benchmarks/bench_projection.py [--repeat 20]

Results are written to ``docs/projection-bench.json`` and printed as Markdown.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from parallelner.align import project_spans
from parallelner.jobs.project import known_labels, project_line
from parallelner.records import Instance
from parallelner.version import PIPELINE_VERSION

REPO = Path(__file__).resolve().parents[1]
DEV = REPO / "data" / "projection-dev"
OUT = REPO / "docs" / "projection-bench.json"
TOTAL_PAIRS = 257_190


def load() -> list[tuple[str, Instance, str, str, dict[int, str]]]:
    rows = []
    for path in sorted(DEV.glob("*.jsonl")):
        for raw in path.read_text(encoding="utf-8").splitlines():
            d = json.loads(raw)
            src = Instance(**d["source"])
            mentions = {i: g["text"] for i, g in enumerate(d["gold"][: len(src.entities)])}
            rows.append((raw, src, d["target"]["text"], d["target"]["lang"], mentions))
    return rows


def measure(fn, rows, repeat: int) -> float:
    """Pairs per CPU-second over ``repeat`` passes (after one warm-up pass)."""
    for r in rows:
        fn(r)
    t0 = time.process_time()
    for _ in range(repeat):
        for r in rows:
            fn(r)
    return len(rows) * repeat / (time.process_time() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    rows = load()
    labels = known_labels()
    results = {
        "pure, no mentions": measure(
            lambda r: project_spans(r[1], r[2], r[3], None), rows, args.repeat
        ),
        "pure, with mentions": measure(
            lambda r: project_spans(r[1], r[2], r[3], r[4]), rows, args.repeat
        ),
        "project_line (--llm none)": measure(
            lambda r: json.dumps(project_line(r[0], 0, labels=labels)[1], ensure_ascii=False),
            rows,
            args.repeat,
        ),
    }
    record = {
        "signature": f"parallelner:{PIPELINE_VERSION}|pairs:{len(rows)}|repeat:{args.repeat}|"
        "clock:process_time|threads:1",
        "machine": f"{platform.machine()} {platform.processor() or ''} "
        f"{platform.python_implementation()} {platform.python_version()}".strip(),
        "pairs_per_cpu_s": {k: round(v) for k, v in results.items()},
        "seconds_for_257190": {k: round(TOTAL_PAIRS / v, 1) for k, v in results.items()},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"`{record['signature']}` on {record['machine']}\n")
    print("| path | pairs / CPU-second | 257,190 pairs on one core |")
    print("|---|---:|---:|")
    for k, v in results.items():
        print(f"| {k} | {v:,.0f} | {TOTAL_PAIRS / v:,.0f} s |")


if __name__ == "__main__":
    main()

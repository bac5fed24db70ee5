"""Push / pull throughput against a running Label Studio (not a test).

    python benchmarks/bench_review.py --url http://127.0.0.1:8080 --n 10000 \
        --out docs/benchmarks-review.md     # key: PARALLELNER_LABEL_STUDIO_API_KEY

Records are the real en->zh pairs of data/projection-dev/pud-en-zh.jsonl, repeated
with distinct record ids. Measures: first push (project creation + batched import),
second push (nothing to import: the idempotency check), pull with a few annotations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from annotation.client import IMPORT_BATCH, ReviewClient  # noqa: E402
from annotation.pull import pull  # noqa: E402
from annotation.push import push  # noqa: E402
from parallelner.reasons import Status  # noqa: E402
from parallelner.records import Entity, ParallelRecord, ProjectedEntity  # noqa: E402


def records(n: int) -> list[ParallelRecord]:
    """``n`` review records cycling over the real pud en->zh pairs."""
    rows = [json.loads(x) for x in (REPO / "data/projection-dev/pud-en-zh.jsonl").read_text(
        encoding="utf-8").splitlines()]  # fmt: skip
    rows = [r for r in rows if r["gold"] and len(r["gold"]) == len(r["source"]["entities"])]
    out = []
    for i in range(n):
        r = rows[i % len(rows)]
        gold = sorted(r["gold"], key=lambda e: e["start"])
        out.append(ParallelRecord(
            record_id=f"bench-{i:06d}", instance_id=r["source"]["id"], run_id="bench",
            source_dataset="wikineural", src_lang="en", tgt_lang="zh",
            src_text=r["source"]["text"],
            src_entities=tuple(Entity(**e) for e in r["source"]["entities"]),
            tgt_text=r["target"]["text"],
            tgt_entities=tuple(ProjectedEntity(**g, source_index=k, method="exact", score=0.9)
                               for k, g in enumerate(gold)),
            status=Status.REVIEW, pipeline_version="bench", prompt_version="translate.v1",
            model="bench", config_hash="bench",
        ))  # fmt: skip
    return out


def main() -> None:
    """Run the measurements and write a Markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default=os.environ.get("PARALLELNER_LABEL_STUDIO_URL"))
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--annotate", type=int, default=50)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    client = ReviewClient(a.url, os.environ.get("PARALLELNER_LABEL_STUDIO_API_KEY"))
    recs = records(a.n)
    title = f"bench {uuid.uuid4().hex[:8]}"
    rows = []

    t = time.perf_counter()
    first = push(recs, client, title)
    rows.append(("first push (create + import)", time.perf_counter() - t, first["imported"]))
    t = time.perf_counter()
    second = push(recs, client, title)
    rows.append(("second push (nothing new)", time.perf_counter() - t, second["imported"]))
    pid = first["project_id"]
    tasks = client.task_record_ids(pid)
    accept = [{"from_name": "decision", "to_name": "tgt", "type": "choices",
               "value": {"choices": ["Accept"]}}]  # fmt: skip
    for r in recs[: a.annotate]:
        client.http().annotations.create(tasks[r.record_id], result=accept)
    t = time.perf_counter()
    _, report = pull(recs, client, title)
    rows.append((f"pull ({a.annotate} annotated)", time.perf_counter() - t, report["accepted"]))
    client.http().projects.delete(pid)

    lines = [
        "# Review push / pull throughput",
        "",
        f"Label Studio at {a.url} (SQLite, one process, same machine), {a.n} tasks of real "
        f"en->zh pairs, {IMPORT_BATCH} tasks per import request; "
        f"{platform.machine()}, {os.cpu_count()} CPUs (shared). "
        "Re-run: `python benchmarks/bench_review.py --n 10000 --out docs/benchmarks-review.md`.",
        "",
        "| step | seconds | tasks/s | count |",
        "|---|---:|---:|---:|",
    ]
    for name, secs, count in rows:
        lines.append(f"| {name} | {secs:.1f} | {a.n / secs:.0f} | {count} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

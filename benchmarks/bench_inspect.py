"""Benchmark `parallelner inspect` on the full bundled corpora; writes docs/benchmarks-inspect.md.

For each corpus: the counts the reader reports next to an independent plain count
(tags / raw label dicts, no project code), the library read time (best of N) and the
wall time and peak memory (max RSS) of the whole CLI process.

    .venv/bin/python benchmarks/bench_inspect.py [--repeat 3] [--out docs/benchmarks-inspect.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from parallelner.version import PIPELINE_VERSION  # noqa: E402
from parallelner_cli.inspect import inspect_file  # noqa: E402

CORPORA = [
    ("data/sources/wikineural-en-val.conllu", "wikineural"),
    ("data/sources/cluener-train.json", "cluener"),
    ("data/sources/cluener-dev.json", "cluener"),
]


def plain_count(path: Path, fmt: str) -> tuple[int, dict[str, int]]:
    """Sentences and entities per type without any project code."""
    entities: Counter[str] = Counter()
    sentences = 0
    if fmt == "cluener":
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                labels = json.loads(line).get("label", {})
                spans = sorted(
                    (s, e) for ms in labels.values() for ss in ms.values() for s, e in ss
                )
                if any(b[0] <= a[1] for a, b in zip(spans, spans[1:], strict=False)):
                    continue  # overlapping spans: the readers quarantine the line
                sentences += 1
                for typ, mentions in labels.items():
                    entities[typ] += sum(len(s) for s in mentions.values())
        return sentences, dict(sorted(entities.items()))
    prev, inside = "O", False
    for line in path.read_text(encoding="utf-8").split("\n") + [""]:
        if not line.strip():
            sentences += inside
            prev, inside = "O", False
            continue
        tag = line.split("\t")[-1]
        inside = True
        if tag.startswith("B-") or (tag.startswith("I-") and prev[2:] != tag[2:]):
            entities[tag[2:]] += 1
        prev = tag
    return sentences, dict(sorted(entities.items()))


def cli_run(path: str, fmt: str) -> tuple[float, float, dict]:
    """Wall seconds, max RSS (MiB, via wait4) and JSON output of one `parallelner inspect` process."""
    exe = str(Path(sys.executable).parent / "parallelner")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [exe, "inspect", path, "--format", fmt, "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.stdout.read(), proc.stderr.read()  # stderr is small: no deadlock
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"inspect failed on {path}: {err.decode()}")
    return wall, usage.ru_maxrss / 1024, json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks-inspect.md")
    args = ap.parse_args()

    rows = []
    for rel, fmt in CORPORA:
        path = REPO / rel
        lib = min(inspect_file(path, fmt)["seconds"] for _ in range(args.repeat))
        runs = [cli_run(rel, fmt) for _ in range(args.repeat)]
        wall = min(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        summary = runs[0][2]
        sentences, entities = plain_count(path, fmt)
        match = summary["sentences"] == sentences and summary["entities_by_label"] == entities
        rows.append((rel, fmt, summary, sentences, entities, lib, wall, rss, match))
        print(
            f"{rel}: {summary['sentences']} sentences, {summary['entities']} entities, "
            f"repaired {summary['repaired']}, quarantined {summary['quarantined']}; "
            f"library {lib:.2f} s, CLI {wall:.2f} s, max RSS {rss:.0f} MiB; "
            f"independent count {'matches' if match else 'DIFFERS'}"
        )

    lines = [
        "# Benchmark: `parallelner inspect` on the bundled corpora",
        "",
        "Written by `benchmarks/bench_inspect.py` (do not edit by hand; re-run it).",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; parallelner {PIPELINE_VERSION}; "
        f"Python {platform.python_version()}; {platform.machine()}, {os.cpu_count()} CPUs "
        f"(shared machine); best of {args.repeat} runs.",
        "- *library*: `inspect_file()` in-process (read + validate + count);"
        " *CLI*: the whole `parallelner inspect FILE --format F --json` process,"
        " interpreter start-up and imports included; *max RSS*: that process's peak memory.",
        "- *independent count*: sentences and entities per type counted by plain Python"
        " straight from the file (B- tags plus I- tags after O/another type for"
        " column files — conlleval's reading; the lengths of the span lists in each raw"
        " CLUENER label dict), without project code.",
        "",
        "| file | sentences | entities | repaired | quarantined | library s | CLI s | max RSS MiB | independent count |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for rel, _fmt, s, _n, _e, lib, wall, rss, match in rows:
        lines.append(
            f"| `{rel}` | {s['sentences']:,} | {s['entities']:,} | {s['repaired']:,} | "
            f"{s['quarantined']:,} | {lib:.2f} | {wall:.2f} | {rss:.0f} | "
            f"{'matches' if match else '**differs**'} |"
        )
    lines += ["", "## Entities per type (reader = independent count)", ""]
    for rel, _fmt, s, n, e, *_ in rows:
        lines.append(
            f"`{rel}` — {n:,} sentences; repaired: "
            f"{json.dumps(s['repaired_by_reason']) if s['repaired'] else 'none'}"
        )
        lines.append("")
        lines.append("| type | reader | independent |")
        lines.append("|---|---:|---:|")
        for label in sorted(set(s["entities_by_label"]) | set(e)):
            lines.append(
                f"| {label} | {s['entities_by_label'].get(label, 0):,} | {e.get(label, 0):,} |"
            )
        lines.append("")
    # Constant memory: the same reader on ten concatenated copies of each corpus.
    import tempfile

    lines += [
        "## Streaming: memory does not grow with the file",
        "",
        "The same CLI on a temporary file holding 10 copies of the corpus:",
        "",
        "| file x10 | sentences | CLI s | max RSS MiB | x1 max RSS MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for rel, fmt, _s, _n, _e, _lib, _wall, rss1, _m in rows[:2]:
            big = Path(tmp) / Path(rel).name
            data = (REPO / rel).read_bytes()
            sep = b"" if fmt == "cluener" else b"\n"
            big.write_bytes(sep.join([data.rstrip(b"\n") + b"\n"] * 10))
            wall, rss, summary = cli_run(str(big), fmt)
            print(
                f"{rel} x10: {summary['sentences']} sentences, CLI {wall:.2f} s, max RSS {rss:.0f} MiB"
            )
            lines.append(
                f"| `{rel}` x10 | {summary['sentences']:,} | {wall:.2f} | {rss:.0f} | {rss1:.0f} |"
            )
    lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

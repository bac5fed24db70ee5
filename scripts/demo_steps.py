"""The readings `make demo` prints between its commands (scripts/demo.sh runs them).

Each subcommand reads what the pipeline wrote (quality reports, an export, a build,
training and evaluation reports) and says it in a few plain lines; none of them changes
anything. ``python scripts/demo_steps.py --help`` lists them.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

SERVED = (
    "parallelner run examples/wikineural-en-sample.conllu --to zh \\\n"
    "      --llm-base-url http://127.0.0.1:8000/v1 --llm-model Qwen/Qwen2.5-7B-Instruct"
)


def _meanings() -> dict[str, str]:
    from parallelner_cli.reasons import reason_table

    return {r["code"]: r["meaning"] for r in reason_table()}


def _why(deciding: dict[str, int], meanings: dict[str, str]) -> str:
    parts = [
        f"{code} x{n} ({meanings.get(code, '')})" if meanings.get(code) else f"{code} x{n}"
        for code, n in Counter(deciding).most_common(2)
    ]
    return "; ".join(parts)


def outcome(runs: Path, home: Path) -> None:
    """A plain reading of the local-model runs' quality reports, and the served-model line."""
    meanings = _meanings()
    lines = []
    for rows in sorted(runs.glob("run-*.parquet")):
        report = json.loads((home / "reports" / rows.stem / "report.json").read_text())
        by = report["by_status"]
        first = pq.read_table(rows, columns=["src_lang", "tgt_lang"]).slice(0, 1).to_pylist()
        way = f"{first[0]['src_lang']}->{first[0]['tgt_lang']}" if first else rows.stem
        line = f"  {way}: {by.get('accepted', 0)} of {report['total']} accepted"
        for status in ("rejected", "review", "failed"):
            if by.get(status):
                why = _why(report["deciding_reason"].get(status, {}), meanings)
                line += f"; {by[status]} {status}" + (f": {why}" if why else "")
        lines.append(line)
    print("\n".join(sorted(lines)))
    print(
        f"  (every code: parallelner reasons; a run's whole report: {home}/reports/<run>/report.md)"
    )
    print(
        "  Gemma 3 270M is a tiny base model: it runs on a CPU, but its translations are\n"
        "  poor and the checks say so instead of letting them through. The same command on\n"
        "  a served model (vLLM, OpenAI-compatible) is:\n"
        f"    {SERVED}"
    )


def load(export: Path) -> None:
    """Load an export with ``datasets.load_dataset`` and show its splits and one pair."""
    from datasets import load_dataset

    ds = load_dataset(str(export))
    statuses = Counter(s for split in ds.values() for s in split["status"])
    sizes = ", ".join(f"{name} {len(split)}" for name, split in ds.items())
    print(f"  DatasetDict: {sizes}; statuses {dict(statuses)}")
    row = next((r for r in ds["train"] if r["status"] == "accepted" and r["tgt_entities"]), None)
    if row is None:
        return
    print(f"  {row['src_lang']}: {row['src_text']}")
    print(f"  {row['tgt_lang']}: {row['tgt_text']}")
    for e in row["tgt_entities"]:
        src = row["src_entities"][e["source_index"]]
        print(f"    {src['text']!r} -> {e['text']!r} {e['label']} ({e['method']})")


def example(data: Path) -> None:
    """One instruction example of a build: the end of its prompt and its answer."""
    manifest = json.loads((data / "manifest.json").read_text())
    print(f"  examples: {json.dumps(manifest['examples'])}")
    with open(data / "train.jsonl", encoding="utf-8") as fh:
        ex = next(
            (e for e in map(json.loads, fh) if e["task"] == "ner" and e["completion"].strip()),
            None,
        )
    if ex is None:
        return
    lines = ex["prompt"].rstrip().splitlines()
    sentence = next((x for x in reversed(lines) if x.startswith("sentence =")), lines[-1])
    print("  prompt: the ontology classes as Python (docstrings), an instruction, then")
    print(f"    {sentence}")
    print(f"  answer: {ex['completion'].strip()}")


def trained(sft: Path, evaluation: Path) -> None:
    """The training and evaluation reports in two lines, and what they are worth."""
    t = json.loads((sft / "train_report.json").read_text())
    e = json.loads((evaluation / "eval_report.json").read_text())["overall"]
    print(
        f"  trained {t['global_step']} LoRA steps on {t['device']} "
        f"(loss {t['losses'][0]:.2f} -> {t['losses'][-1]:.2f}); "
        f"evaluated {e['examples']} held-out examples: F1 {e['f1']:.3f}, "
        f"{e['malformed']} malformed replies"
    )
    print(
        "  These scores mean nothing: the model is a random 2-layer Llama. They show that\n"
        "  the pipeline runs end to end; training/configs/lora-sft.yaml is the real recipe."
    )


def label_studio_up(url: str) -> None:
    """Exit 0 when a Label Studio answers at ``url`` (its /health page), 1 otherwise."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2) as r:
            sys.exit(0 if r.status == 200 else 1)
    except (urllib.error.URLError, OSError, ValueError):
        sys.exit(1)


def closing(out: Path, home: Path, tag: str, seconds: int, reused: list[str]) -> None:
    """The last screen: where every artefact is, the counts, the next three commands."""
    from parallelner import store
    from parallelner.settings import load_settings

    settings = load_settings(home=home)
    rows = store.load_snapshot(tag, settings=settings)
    counts = Counter(rows.column("status").to_pylist())
    runs = sorted({r for r in rows.column("run_id").to_pylist()})
    t = json.loads((out / "tiny-sft" / "train_report.json").read_text())
    splits = json.loads((out / "export" / "metadata.json").read_text()).get("splits", {})
    split = ", ".join(f"{name} {s['records']}" for name, s in splits.items())
    print(f"  dataset tag {tag}: {rows.num_rows} rows, " + ", ".join(
        f"{s} {n}" for s, n in counts.most_common()))  # fmt: skip
    print("  where everything is:")
    for what, where in (
        ("rows (Iceberg table, every snapshot)", home / "warehouse"),
        ("rows of the local-model runs (Parquet)", out / "runs"),
        ("projected human-translated pairs (JSONL)", out / "projected-en-de.jsonl"),
        (
            "quality reports (report.md, scores.png)",
            ", ".join(str(home / "reports" / r) for r in runs),
        ),  # fmt: skip
        (f"export of {tag}, accepted pairs ({split})", out / "export"),
        ("instruction data (KnowCoder style)", out / "train-data"),
        (f"training report ({t['global_step']} steps)", out / "tiny-sft" / "train_report.json"),
        ("evaluation report", out / "eval" / "eval_report.json"),
    ):
        print(f"    {what}: {where}")
    if reused:
        print("  reused from an earlier make demo: " + "; ".join(reused))
    print(f"  the demo took {seconds // 60} min {seconds % 60:02d} s")
    print("  next, the three commands a user types:")
    print(
        f"    {SERVED.replace('examples/wikineural-en-sample.conllu', 'data/sources/wikineural-en-val.conllu')}"
    )
    print(
        "    parallelner review push      # with Label Studio: PARALLELNER_LABEL_STUDIO_URL / _API_KEY"
    )
    print(
        f"    parallelner train run -c training/configs/lora-sft.yaml --data {out / 'train-data'}  # GPU"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("outcome", help=outcome.__doc__)
    s.add_argument("runs", type=Path)
    s.add_argument("home", type=Path)
    s = sub.add_parser("load", help=load.__doc__)
    s.add_argument("export", type=Path)
    s = sub.add_parser("example", help=example.__doc__)
    s.add_argument("data", type=Path)
    s = sub.add_parser("trained", help=trained.__doc__)
    s.add_argument("sft", type=Path)
    s.add_argument("evaluation", type=Path)
    s = sub.add_parser("label-studio-up", help=label_studio_up.__doc__)
    s.add_argument("url")
    s = sub.add_parser("closing", help=closing.__doc__)
    s.add_argument("out", type=Path)
    s.add_argument("home", type=Path)
    s.add_argument("tag")
    s.add_argument("seconds", type=int)
    s.add_argument("reused", nargs="*")
    a = p.parse_args(argv)
    if a.cmd == "outcome":
        outcome(a.runs, a.home)
    elif a.cmd == "load":
        load(a.export)
    elif a.cmd == "example":
        example(a.data)
    elif a.cmd == "trained":
        trained(a.sft, a.evaluation)
    elif a.cmd == "label-studio-up":
        label_studio_up(a.url)
    else:
        closing(a.out, a.home, a.tag, a.seconds, a.reused)


if __name__ == "__main__":
    main()

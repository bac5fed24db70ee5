"""Same inputs, same seeds, same stand-in: are two revisions' tables identical?

Runs the whole per-instance chain (``parallelner.stages.synthesize_instances``) of the
checkout it is run from on every projection-dev pair (en->de/es/it, en->zh-Hant) against
the loopback server answering as ``NoisyTranslator`` (40% mistakes, seed 0), and also
on the bundled WikiNEuRal sample against the default stand-in, and writes one JSON line
per row: record id, status, reasons, target text and spans. ``--compare A B`` diffs two
such dumps.

    # before: a worktree of the old revision
    git worktree add /tmp/before <rev>
    PYTHONPATH=/tmp/before .venv/bin/python benchmarks/compare_tables.py --out /tmp/a.jsonl
    # after
    .venv/bin/python benchmarks/compare_tables.py --out /tmp/b.jsonl [--set ladder.enabled=false]
    .venv/bin/python benchmarks/compare_tables.py --compare /tmp/a.jsonl /tmp/b.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "projection-dev"
# spelled out, not imported from ``testing.samples.DEV_SETS``: the script runs against
# older revisions (``PYTHONPATH=<worktree>``) that do not have it
FILES = {
    "en-de": ("europarl-en-de.jsonl", "de"),
    "en-es": ("europarl-en-es.jsonl", "es"),
    "en-it": ("europarl-en-it.jsonl", "it"),
    "en-zh": ("pud-en-zh.jsonl", "zh-Hant"),
}


def _row(rec: Any) -> dict[str, Any]:
    return {
        "record_id": rec.record_id,
        "status": str(rec.status),
        "reasons": [str(r) for r in rec.reasons],
        "tgt_text": rec.tgt_text,
        "spans": [(e.start, e.end, e.label, e.source_index) for e in rec.tgt_entities],
        "unprojected": [(u.source_index, str(u.reason)) for u in rec.unprojected],
        "repair_steps": list(rec.repair_steps),
    }


def dump(out: Path, overrides: dict[str, Any]) -> int:
    from parallelner.llm.client import LLMClient
    from parallelner.settings import Settings
    from parallelner.stages import synthesize_instances
    from parallelner.testing.noisy import NoisyTranslator, load_gold_pairs
    from parallelner.testing.openai_server import OpenAIServer

    n = 0
    with out.open("w", encoding="utf-8") as fh:
        for name, (fname, tgt) in FILES.items():
            pairs = load_gold_pairs([DATA / fname])
            translator = NoisyTranslator(pairs, mistake_rate=0.4, seed=0)
            with tempfile.TemporaryDirectory() as home, OpenAIServer(responder=translator) as srv:
                settings = Settings(
                    home=Path(home), llm_base_url=srv.base_url, llm_model="test-model",
                    **overrides,
                )  # fmt: skip

                async def go(settings=settings, pairs=pairs, tgt=tgt):
                    async with LLMClient.from_settings(settings, cache=False) as client:
                        return await synthesize_instances(
                            client, [p.instance() for p in pairs], tgt, "cmp", "cmp00000",
                            settings,
                        )  # fmt: skip

                for rec in asyncio.run(go()):
                    fh.write(json.dumps({"set": name, **_row(rec)}, ensure_ascii=False) + "\n")
                    n += 1
    return n


def compare(a: Path, b: Path) -> int:
    rows_a = [json.loads(x) for x in a.read_text(encoding="utf-8").splitlines()]
    rows_b = [json.loads(x) for x in b.read_text(encoding="utf-8").splitlines()]
    key = lambda r: (r["set"], r["record_id"])  # noqa: E731
    by_b = {key(r): r for r in rows_b}
    differ = 0
    for r in rows_a:
        other = by_b.pop(key(r), None)
        if other != r:
            differ += 1
            if differ <= 10:
                print(f"differs: {key(r)}\n  a: {r}\n  b: {other}", file=sys.stderr)
    print(f"{len(rows_a)} rows in A, {len(rows_b)} in B; {differ} differ; {len(by_b)} only in B")
    return 1 if differ or by_b else 0


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="write this checkout's rows here (JSONL)")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    ap.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="a stage setting for the run, e.g. ladder.enabled=false",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if not args.out:
        ap.error("give --out FILE or --compare A B")
    overrides: dict[str, Any] = {}
    for item in args.set:
        path, _, value = item.partition("=")
        section, _, key = path.partition(".")
        overrides.setdefault(section, {})[key] = _value(value)
    print(f"{dump(args.out, overrides)} rows -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

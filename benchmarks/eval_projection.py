"""Projection quality on real gold data: strict (span + type) micro P/R/F1 per pair.

Runs the same code as ``parallelner project`` over ``data/projection-dev`` (Europarl NER
en->de/es/it, Universal NER PUD en->zh) and compares ``target.entities`` with the
independently annotated target-side ``gold``. Errors are broken down per method.

    python benchmarks/eval_projection.py --llm none
    python benchmarks/eval_projection.py --llm local --limit 25   # embedded Gemma 3 270M

Results are merged into ``docs/projection-eval.json`` (keyed by mode and limit) and
printed as Markdown; ``docs/projection.md`` quotes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any

from parallelner.jobs.project import known_labels, project_line, project_line_llm
from parallelner.settings import load_settings
from parallelner.version import PIPELINE_VERSION

REPO = Path(__file__).resolve().parents[1]
DEV = REPO / "data" / "projection-dev"
PAIRS = {
    "en-de": "europarl-en-de",
    "en-es": "europarl-en-es",
    "en-it": "europarl-en-it",
    "en-zh": "pud-en-zh",
}
OUT = REPO / "docs" / "projection-eval.json"


def _lines(name: str, limit: int | None) -> list[tuple[int, str]]:
    with open(DEV / f"{name}.jsonl", encoding="utf-8") as fh:
        rows = [(n, raw.rstrip("\n")) for n, raw in enumerate(fh, 1)]
    return rows[:limit] if limit else rows


def score_line(row: dict[str, Any], gold: list[dict[str, Any]], acc: dict[str, Counter]) -> None:
    """Add one projected line to the counters (strict span + type matching)."""
    pred = row["target"]["entities"]
    gold_keys = {(g["start"], g["end"], g["label"]) for g in gold}
    pred_keys = {(e["start"], e["end"], e["label"]) for e in pred}
    acc["total"]["tp"] += len(gold_keys & pred_keys)
    acc["total"]["fp"] += len(pred_keys - gold_keys)
    acc["total"]["fn"] += len(gold_keys - pred_keys)
    for e in pred:
        key = (e["start"], e["end"], e["label"])
        m = acc.setdefault(f"method:{e['method']}", Counter())
        m["predicted"] += 1
        if key in gold_keys:
            m["correct"] += 1
        elif any((g["start"], g["end"]) == (e["start"], e["end"]) for g in gold):
            m["wrong_type"] += 1
        elif any(g["start"] < e["end"] and e["start"] < g["end"] for g in gold):
            m["wrong_span"] += 1
        else:
            m["spurious"] += 1
    missed = acc["missed"]
    for g in gold:
        if (g["start"], g["end"], g["label"]) in pred_keys:
            continue
        if any(e["start"] < g["end"] and g["start"] < e["end"] for e in pred):
            missed["projected_wrong_span_or_type"] += 1
        else:
            missed["no_overlapping_prediction"] += 1
    for u in row["unprojected"]:
        missed[f"unprojected:{u['reason']}"] += 1


def prf(c: Counter) -> dict[str, float]:
    p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
    r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"P": round(100 * p, 1), "R": round(100 * r, 1), "F1": round(100 * f, 1)}


async def _llm_rows(lines, settings, threshold, labels):
    from parallelner.llm.client import LLMClient

    async with LLMClient.from_settings(settings) as client:
        rows = await asyncio.gather(
            *(
                project_line_llm(client, raw, n, threshold=threshold, labels=labels,
                                 fallback_model=settings.llm_fallback_model)
                for n, raw in lines
            )
        )  # fmt: skip
        return [r for _, r in rows], client.usage.as_dict()


def evaluate(
    mode: str, limit: int | None, threshold: float, only: set[str] | None = None
) -> dict[str, Any]:
    """Evaluate every pair (or those in ``only``); returns the result record."""
    labels = known_labels()
    settings = load_settings()
    if mode == "local":
        settings = settings.model_copy(update={"llm_base_url": None})
    result: dict[str, Any] = {
        "mode": mode,
        "limit": limit,
        "threshold": threshold,
        "model": None if mode == "none" else settings.llm_model,
        "signature": f"parallelner:{PIPELINE_VERSION}|llm:{mode}|thr:{threshold}|"
        f"limit:{limit or 'all'}|match:strict-span-type|micro",
        "machine": f"{platform.machine()} {platform.python_implementation()} "
        f"{platform.python_version()}",
        "pairs": {},
    }
    for pair, name in PAIRS.items():
        if only and pair not in only:
            continue
        lines = _lines(name, limit)
        t0 = time.perf_counter()
        usage = None
        if mode == "none":
            rows = [project_line(raw, n, threshold=threshold, labels=labels)[1] for n, raw in lines]
        else:
            rows, usage = asyncio.run(_llm_rows(lines, settings, threshold, labels))
        wall = time.perf_counter() - t0
        acc: dict[str, Counter] = {"total": Counter(), "missed": Counter()}
        for (_, raw), row in zip(lines, rows, strict=True):
            score_line(row, json.loads(raw)["gold"], acc)
        result["pairs"][pair] = {
            "sentences": len(lines),
            **prf(acc["total"]),
            **dict(acc["total"]),
            "methods": {k[7:]: dict(v) for k, v in sorted(acc.items()) if k.startswith("method:")},
            "missed": dict(acc["missed"].most_common()),
            "wall_s": round(wall, 2),
            "llm_usage": usage,
        }
    _europarl_avg(result)
    return result


def _europarl_avg(result: dict[str, Any]) -> None:
    euro = [result["pairs"][p]["F1"] for p in ("en-de", "en-es", "en-it") if p in result["pairs"]]
    result["europarl_avg_F1"] = round(sum(euro) / 3, 1) if len(euro) == 3 else None


def markdown(result: dict[str, Any]) -> str:
    """The result as Markdown tables (scores, then per-method errors)."""
    lines = [
        f"`{result['signature']}`",
        "",
        "| pair | sentences | P | R | F1 | tp | fp | fn |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for pair, r in result["pairs"].items():
        lines.append(
            f"| {pair} | {r['sentences']} | {r['P']} | {r['R']} | {r['F1']} | "
            f"{r.get('tp', 0)} | {r.get('fp', 0)} | {r.get('fn', 0)} |"
        )
    lines.append(f"| Europarl avg F1 (de/es/it) | | | | {result['europarl_avg_F1']} | | | |")
    lines += [
        "",
        "| pair | method | predicted | correct | wrong span | wrong type | spurious |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for pair, r in result["pairs"].items():
        for m, c in r["methods"].items():
            lines.append(
                f"| {pair} | {m} | {c.get('predicted', 0)} | {c.get('correct', 0)} | "
                f"{c.get('wrong_span', 0)} | {c.get('wrong_type', 0)} | {c.get('spurious', 0)} |"
            )
    lines += ["", "| pair | gold entities missed, by cause |", "|---|---|"]
    for pair, r in result["pairs"].items():
        lines.append(f"| {pair} | " + ", ".join(f"{k} {v}" for k, v in r["missed"].items()) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llm", choices=["none", "local", "default"], default="none",
                    help="none: string matching; local: embedded Gemma; default: configured LLM")  # fmt: skip
    ap.add_argument("--limit", type=int, default=None, help="first N sentences of each pair")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--no-save", action="store_true", help="do not update the JSON results")
    ap.add_argument("--pairs", nargs="+", choices=list(PAIRS), help="only these pairs "
                    "(their results replace those pairs' in the saved run)")  # fmt: skip
    args = ap.parse_args()
    result = evaluate(args.llm, args.limit, args.threshold, set(args.pairs or ()))
    if not args.no_save:
        data = json.loads(OUT.read_text(encoding="utf-8")) if OUT.exists() else {}
        key = f"{args.llm}|limit:{args.limit or 'all'}"
        if args.pairs and key in data:  # keep the other pairs of the saved run
            merged = data[key]
            merged["pairs"].update(result["pairs"])
            _europarl_avg(merged)
            result = merged
        data[key] = result
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(markdown(result))


if __name__ == "__main__":
    main()

"""Batch runs against online runs: rounds, questions per round, requests and tokens per
accepted pair, on the projection-dev pairs with the noisy translator.

For each dev file (Europarl en->de/es/it, PUD en->zh asked as Traditional), the same
instances run twice through the library path a `parallelner run` takes (``plan_run``,
shards, ``finalize_run``), each on its own home:

- **online**: ``process_shard`` against the loopback chat server;
- **batch**: ``batchrun.run_batch`` against the Files + Batches stand-in, whose lines the
  same kind of chat server answers.

Both servers answer as ``NoisyTranslator`` (40% mistakes, a fallback model with 5%, the
repair loop on): the tables must be equal (record ids, statuses, reasons, spans), which
the script checks and reports. Writes docs/benchmarks-batch.md.

    .venv/bin/python benchmarks/bench_batch.py            # print
    .venv/bin/python benchmarks/bench_batch.py --write    # and update the doc
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from parallelner import batchrun, pipeline  # noqa: E402
from parallelner.llm.runtime import LLMRuntime  # noqa: E402
from parallelner.records import table_to_records  # noqa: E402
from parallelner.settings import load_settings  # noqa: E402
from parallelner.store import load_snapshot  # noqa: E402
from parallelner.testing.batch_server import BatchServer  # noqa: E402
from parallelner.testing.noisy import NoisyTranslator, load_gold_pairs  # noqa: E402
from parallelner.testing.openai_server import OpenAIServer  # noqa: E402
from parallelner.testing.samples import DEV_SETS  # noqa: E402
from parallelner.writers.spanjsonl import write_span_jsonl  # noqa: E402

DATA = REPO / "data" / "projection-dev"
DOC = REPO / "docs" / "benchmarks-batch.md"
STRONG = "strong-model"


TAIL = 50  # batch.online_below of the second batch run


def _settings(home: Path, base_url: str, online_below: int = 0) -> Any:
    return load_settings(
        None, home=home, llm_base_url=base_url, llm_model="test-model",
        llm_fallback_model=STRONG, shard_size=100,
        batch={"poll_s": 0.02, "online_below": online_below},
    )  # fmt: skip


def _rows(summary: Any, settings: Any) -> list[tuple]:
    recs = table_to_records(load_snapshot(summary.snapshot_id, home=settings.home))
    return sorted(
        (r.record_id, r.status.value, tuple(x.value for x in r.reasons), r.tgt_text,
         tuple((e.start, e.end, e.label, e.source_index) for e in r.tgt_entities))
        for r in recs
    )  # fmt: skip


def run_pair(name: str, rate: float, seed: int) -> dict[str, Any]:
    fname, tgt = DEV_SETS[name]
    tgt = tgt.split("-")[0]  # `run --to` takes the language (PUD's side is Traditional)
    pairs = load_gold_pairs([DATA / fname])

    def translator() -> NoisyTranslator:
        return NoisyTranslator(pairs, mistake_rate=rate, seed=seed, strong_model=STRONG)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "src.jsonl"
        write_span_jsonl(
            [p.instance().model_copy(update={"source_dataset": "conll"}) for p in pairs], src
        )
        with OpenAIServer(responder=translator()) as srv:
            s = _settings(tmp / "online", srv.base_url)
            plan = pipeline.plan_run([src], tgt, s, dataset="conll")
            t = time.monotonic()
            with LLMRuntime(s) as rt:
                results = [pipeline.process_shard(x, plan, s, rt) for x in plan.shards]
                usage = rt.client.usage.as_dict()
            online_s = time.monotonic() - t
            summary = pipeline.finalize_run(plan, results, s)
            online = _rows(summary, s)
            online_counts = dict(summary.counts)
        with OpenAIServer(responder=translator()) as srv, BatchServer(chat=srv) as bs:
            s = _settings(tmp / "batch", bs.base_url)
            plan = pipeline.plan_run([src], tgt, s, dataset="conll")
            t = time.monotonic()
            results, rounds = batchrun.run_batch(plan, s)
            batch_s = time.monotonic() - t
            summary = pipeline.finalize_run(plan, results, s)
            batch = _rows(summary, s)
            submitted = bs.stats()["lines_submitted"]
        with OpenAIServer(responder=translator()) as srv, BatchServer(chat=srv) as bs:
            s = _settings(tmp / "tail", bs.base_url, online_below=TAIL)
            plan = pipeline.plan_run([src], tgt, s, dataset="conll")
            results, tail_rounds = batchrun.run_batch(plan, s)
            summary = pipeline.finalize_run(plan, results, s)
            tail = _rows(summary, s)
            tail_submitted = bs.stats()["lines_submitted"]
    accepted = online_counts.get("accepted", 0)
    btok = sum(r.usage["prompt_tokens"] + r.usage["completion_tokens"] for r in rounds)
    otok = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
    return {
        "pair": name,
        "instances": len(pairs),
        "accepted": accepted,
        "same_table": online == batch,
        "rounds": len([r for r in rounds if r.job]),
        "questions_per_round": [r.questions for r in rounds if r.job],
        "batch_requests": submitted,
        "batch_tokens": btok,
        "online_requests": usage.get("requests", 0),
        "online_tokens": otok,
        "tail_same_table": online == tail,
        "tail_rounds": len([r for r in tail_rounds if r.job]),
        "tail_batch_requests": tail_submitted,
        "tail_online_requests": sum(r.usage["requests"] for r in tail_rounds if r.online),
        "online_s": round(online_s, 1),
        "batch_s": round(batch_s, 1),
    }


def render(results: list[dict[str, Any]], rate: float, seed: int) -> str:
    lines = [
        "# Batch runs against online runs",
        "",
        f"`benchmarks/bench_batch.py`, run on {dt.date.today().isoformat()} "
        f"(Python {platform.python_version()}, 2-core machine). The noisy translator "
        f"({rate:.0%} of replies with a mistake, seed {seed}; fallback `{STRONG}` with 5%) "
        "behind both paths; the repair loop on; shards of 100. Online: the loopback chat "
        "server. Batch: the Files + Batches stand-in (`parallelner.testing.batch_server`) "
        "at zero latency, whose lines the same kind of server answers. Reproduce: "
        "`.venv/bin/python benchmarks/bench_batch.py --write`.",
        "",
        "| pair | instances | same table | rounds | questions per round | requests batch "
        "/ online | tokens batch / online | requests / accepted | tokens / accepted |",
        "|---|---:|:---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        acc = max(r["accepted"], 1)
        lines.append(
            f"| {r['pair']} | {r['instances']} | {'yes' if r['same_table'] else '**no**'} "
            f"| {r['rounds']} | {', '.join(map(str, r['questions_per_round']))} "
            f"| {r['batch_requests']:,} / {r['online_requests']:,} "
            f"| {r['batch_tokens']:,} / {r['online_tokens']:,} "
            f"| {r['batch_requests'] / acc:.2f} | {r['batch_tokens'] / acc:,.0f} |"
        )
    lines += [
        "",
        f"With `batch.online_below: {TAIL}` (a round of fewer questions goes online, and "
        "the rest of the run with it):",
        "",
        "| pair | same table | batch rounds | requests in batch jobs | requests online "
        "| share online |",
        "|---|:---:|---:|---:|---:|---:|",
    ]
    for r in results:
        total = r["tail_batch_requests"] + r["tail_online_requests"]
        lines.append(
            f"| {r['pair']} | {'yes' if r['tail_same_table'] else '**no**'} "
            f"| {r['tail_rounds']} | {r['tail_batch_requests']:,} "
            f"| {r['tail_online_requests']:,} | {r['tail_online_requests'] / total:.1%} |"
        )
    lines += [
        "",
        "How to read it:",
        "",
        "- **same table**: record ids, statuses, reasons, target texts and spans of the "
        "batch run equal the online run's, row for row.",
        "- **rounds**: each round is one batch job: the first asks every translation, the "
        "second the read-backs (back-translation with the entity read-back), the later ones "
        "what the repair loop still asks for the pairs in doubt, rung after rung; the last "
        "replay asks nothing and writes the rows. A pair that needs no repair is done "
        "after round 2; the rounds after that carry only the pairs that climb.",
        "- **requests**: batch lines submitted (each question once: the replays answer "
        "earlier rounds' questions from the reply cache) against the online run's requests. "
        "Both paths ask the same questions; online, a question that two instances ask at "
        "the same moment (a sentence that occurs twice in the file) goes out twice before "
        "the cache has its reply, in a batch once. At the OpenAI Batch API's price, half "
        "the cost.",
        "- **the tail**: the last rounds carry a handful of questions each (the pairs that "
        "climb the repair loop rung by rung: each rung needs the answer of the one before). "
        "With a real batch API each round is a job of its own, so the tail sets the run's "
        "duration.",
        "- Wall time is not compared: a real batch job takes minutes to hours per round, "
        "the stand-in none.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=0.4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", nargs="*", default=list(DEV_SETS), choices=list(DEV_SETS))
    ap.add_argument("--write", action="store_true", help="update docs/benchmarks-batch.md")
    args = ap.parse_args(argv)
    results = []
    for name in args.pairs:
        r = run_pair(name, args.rate, args.seed)
        print(r, file=sys.stderr)
        results.append(r)
    text = render(results, args.rate, args.seed)
    print(text)
    if args.write:
        DOC.write_text(text, encoding="utf-8")
    return 0 if all(r["same_table"] and r["tail_same_table"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark of stage 3 (automatic quality) on the real samples, and the language check's
false-rejection rates on real target-language text.

Pairs: every projection-dev pair (Europarl en-de/es/it, PUD en-zh; human translations
and gold spans as the projection), each with a back-translation derived from its source:
the source itself, every other word, the first half, or another pair's source sentence
(a bad one). Everything stage 3 does runs (all checks, routing, duplicate set); no LLM.
langdetect's result cache is cleared before every pass, so repeated passes do not flatter.

    .venv/bin/python benchmarks/bench_quality.py            # print the tables
    .venv/bin/python benchmarks/bench_quality.py --write    # and update docs/quality.md

Writes between the ``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers of
docs/quality.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from parallelner.quality import checks, language
from parallelner.quality.decide import assess_record
from parallelner.records import ParallelRecord
from parallelner.settings import QualitySettings
from parallelner.testing.samples import (
    cluener_texts,
    projection_texts,
    read_projection_drafts,
    target_only_record,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
DOC = REPO / "docs" / "quality.md"


def bench_records() -> list[ParallelRecord]:
    drafts = [
        r
        for f in sorted((DATA / "projection-dev").glob("*.jsonl"))
        for r in read_projection_drafts(f)
    ]
    rng = random.Random(0)
    sources = [r.src_text for r in drafts]
    out = []
    for i, r in enumerate(drafts):
        words = r.src_text.split()
        bt = [
            r.src_text,
            " ".join(words[::2]),
            " ".join(words[: len(words) // 2]),
            rng.choice(sources),
        ][i % 4]
        out.append(r.model_copy(update={"back_translation": bt}))
    return out


def clear_caches() -> None:
    language._langdetect.cache_clear()


def timed_pass(
    records: list[ParallelRecord], q: QualitySettings
) -> tuple[float, float, list[ParallelRecord]]:
    """(wall seconds, CPU seconds of this process, assessed records) of one pass."""
    clear_caches()
    seen: set[str] = set()
    t0, c0 = time.perf_counter(), time.process_time()
    out = [assess_record(r, q, seen) for r in records]
    return time.perf_counter() - t0, time.process_time() - c0, out


def per_check_ms(records: list[ParallelRecord], q: QualitySettings) -> dict[str, float]:
    out = {}
    for check in checks.text_checks:
        clear_caches()
        t0 = time.perf_counter()
        for r in records:
            check(r, q)
        out[check.__name__] = 1000 * (time.perf_counter() - t0) / len(records)
    return out


def langdetect_calls(records: list[ParallelRecord], q: QualitySettings) -> int:
    clear_caches()
    calls = 0
    real = checks.langdetect_guess

    def counted(text: str, seed: int = 0):
        nonlocal calls
        calls += 1
        return real(text, seed)

    checks.langdetect_guess = counted
    try:
        for r in records:
            checks.check_language(r, q)
    finally:
        checks.langdetect_guess = real
    return calls


def langdetect_alone_per_s(texts: list[str]) -> float:
    clear_caches()
    t0 = time.perf_counter()
    for t in texts:
        language.langdetect_guess(t, 0)
    return len(texts) / (time.perf_counter() - t0)


# --- language false-rejection rates ----------------------------------------------------


def language_rates(q: QualitySettings) -> list[tuple[str, int, int, int]]:
    """(set, texts, rejected by our check, rejected by langdetect alone) per real set."""
    sets = [
        ("CLUENER train+dev (zh)", "zh", cluener_texts(DATA)),
        ("PUD targets (zh, Traditional)", "zh", projection_texts(DATA, "pud-en-zh")),
        ("Europarl targets (de)", "de", projection_texts(DATA, "europarl-en-de")),
        ("Europarl targets (es)", "es", projection_texts(DATA, "europarl-en-es")),
        ("Europarl targets (it)", "it", projection_texts(DATA, "europarl-en-it")),
    ]
    rows = []
    for name, lang, texts in sets:
        ours = sum(
            bool(checks.check_language(target_only_record("en", lang, t), q).reasons) for t in texts
        )
        alone = 0
        for t in texts:
            g = language.langdetect_guess(t, q.seed)
            alone += not (g and g[0][0] == lang)
        rows.append((name, len(texts), ours, alone))
    return rows


def _wikineural(limit: int) -> list[str]:
    sentences, tokens = [], []
    with open(DATA / "sources" / "wikineural-en-val.conllu", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                if tokens:
                    sentences.append(" ".join(tokens))
                    tokens = []
            elif not line.startswith("#"):
                tokens.append(line.split("\t")[1])
    return sentences[:limit]


def catch_rates(q: QualitySettings) -> list[tuple[str, int, int]]:
    """(case, texts, caught) for real text put where another language belongs."""
    cases = [
        ("WikiNEuRal English as the zh target (en->zh copy)", "en", "zh", _wikineural(3000)),
        ("CLUENER Chinese as the en target (zh->en copy)", "zh", "en", cluener_texts(DATA)[:3000]),
        (
            "Europarl English sources as the de target",
            "en",
            "de",
            projection_texts(DATA, "europarl-en-de", "source"),
        ),
        ("Europarl Italian as the es target", "en", "es", projection_texts(DATA, "europarl-en-it")),
        ("Europarl German as the it target", "en", "it", projection_texts(DATA, "europarl-en-de")),
    ]
    return [
        (name, len(texts),
         sum(bool(checks.check_language(target_only_record(src, tgt, t), q).reasons) for t in texts))
        for name, src, tgt, texts in cases
    ]  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="update docs/quality.md")
    args = ap.parse_args()
    q = QualitySettings()
    records = bench_records()
    zh = [r for r in records if r.tgt_lang == "zh"]
    latin = [r for r in records if r.tgt_lang != "zh"]
    timed_pass(records, q)  # warm-up (imports, regex compilation)
    rows = []
    for name, subset in (("all projection-dev pairs", records), ("en->zh (PUD)", zh),
                         ("en->de/es/it (Europarl)", latin)):  # fmt: skip
        passes = [timed_pass(subset, q)[:2] for _ in range(args.passes)]
        med = statistics.median(w for w, _ in passes)
        cpu = statistics.median(c for _, c in passes)
        rows.append((name, len(subset), med, len(subset) / med, len(subset) / cpu))
    _, _, out = timed_pass(records, q)
    statuses = Counter(str(r.status) for r in out)
    checks_ms = per_check_ms(records, q)
    calls = langdetect_calls(records, q)
    alone = langdetect_alone_per_s([r.tgt_text or "" for r in records])
    rates = language_rates(q)
    caught = catch_rates(q)

    lines = [
        f"Machine: {os.cpu_count()} cores ({platform.machine()}), Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the end (the "
        f"machine is shared); one process, one core; median of {args.passes} passes, langdetect "
        f"cache cleared before each. Run on {time.strftime('%Y-%m-%d')}. Reproduce: "
        f"`.venv/bin/python benchmarks/bench_quality.py --write`.",
        "",
        "| pairs | n | seconds | pairs/s (wall) | pairs per CPU-second |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {n} | {sec:.3f} | {rate:,.0f} | {cpu_rate:,.0f} |"
        for name, n, sec, rate, cpu_rate in rows
    ]
    lines += [
        "",
        f"Routing of the benchmark set: {dict(sorted(statuses.items()))}.",
        f"langdetect was called for {calls} of {len(records)} pairs "
        f"({calls / len(records):.1%}); langdetect alone runs at {alone:,.0f} sentences/s.",
        "",
        "| check | ms per pair |",
        "|---|---:|",
    ]
    lines += [f"| `{name}` | {ms:.3f} |" for name, ms in checks_ms.items()]
    lines += [
        "",
        "Language check on real target-language text (false rejections):",
        "",
        "| text | n | rejected (ours) | rate | rejected by langdetect alone | rate |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {name} | {n:,} | {ours} | {ours / n:.2%} | {al} | {al / n:.1%} |"
              for name, n, ours, al in rates]  # fmt: skip
    lines += [
        "",
        "Language check on real text in the wrong place (detection):",
        "",
        "| text | n | caught | rate |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {n:,} | {c} | {c / n:.1%} |" for name, n, c in caught]
    table = "\n".join(lines)
    print(table)
    if args.write:
        doc = DOC.read_text(encoding="utf-8")
        start, end = "<!-- bench:start -->", "<!-- bench:end -->"
        head, rest = doc.split(start, 1)
        _, tail = rest.split(end, 1)
        DOC.write_text(f"{head}{start}\n{table}\n{end}{tail}", encoding="utf-8")
        print(f"wrote {DOC.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The quality report of a run: counts, score distributions, precision of ``accepted``.

``summarize(records)`` returns the numbers as data; ``write_report(records, out_dir)``
also writes them as files (``report.json``, ``report.md``, ``scores.png``) so that the
flow can attach them as Prefect artifacts. The numbers add up: every input record is
counted in exactly one status and, within it, under exactly one *deciding* reason (the
first reason that explains the status, or ``none``).

Precision of ``accepted``: the audit sample (``audit_sample``) is a seeded uniform
draw from the pairs the checks accepted. Once reviewers answered it
(``reviewed_accepted`` / ``reviewed_rejected``), the share judged good estimates the
precision of ``accepted``, reported with a 95% Wilson score interval.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from parallelner.errors import ConfigError
from parallelner.quality.decide import REJECT_REASONS, REVIEW_REASONS
from parallelner.reasons import Reason, Status
from parallelner.records import ParallelRecord
from parallelner.settings import QualitySettings

__all__ = [
    "PrecisionEstimate",
    "QualityReport",
    "inline_images",
    "wilson_interval",
    "summarize",
    "thresholds_signature",
    "write_report",
]

# Scores plotted, in this order (see parallelner.quality.checks for their meaning).
PLOTTED_SCORES = (
    "chrf",
    "bleu",
    "length_ratio",
    "tgt_script_share",
    "copy_similarity",
    "entity_coverage",
    "projection_min",
)
_STATUS_COLORS = {
    Status.ACCEPTED: "#2a9d8f",
    Status.REVIEW: "#e9c46a",
    Status.REJECTED: "#e76f51",
    Status.REVIEWED_ACCEPTED: "#264653",
    Status.REVIEWED_REJECTED: "#9b2226",
    Status.FAILED: "#8d99ae",
}


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% by default); (0, 1) when n == 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class PrecisionEstimate:
    """Precision of ``accepted`` estimated from the reviewed audit sample."""

    reviewed: int
    good: int
    precision: float
    low: float  # 95% Wilson interval
    high: float


@dataclass
class QualityReport:
    """Counts and score summaries of one run (plain data; ``files`` once written)."""

    total: int
    by_status: dict[str, int]
    deciding_reason: dict[str, dict[str, int]]  # status -> reason -> records (adds up)
    by_reason: dict[str, int]  # records carrying each reason (a record may carry several)
    scores: dict[str, dict[str, float]]  # score -> n, mean, p05, p50, p95
    audit_sample: int
    precision: PrecisionEstimate | None
    # "pipeline_version|prompt_version|model|config_hash" -> records: what produced them
    provenance: dict[str, int] = field(default_factory=dict)
    # the quality settings the run used (given to write_report), as "name:value|..."
    thresholds: str = ""
    # the repair loop per rung, from the rows' ``ladder:`` steps: tried, fixed, better,
    # failed, no_answer, budget ("review": pairs handed to people with every rung spent);
    # requests and tokens when the run gave them
    repair: dict[str, dict[str, int]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _count_steps(rec: ParallelRecord, out: dict[str, Counter[str]]) -> None:
    """Add ``rec``'s repair-loop steps (``ladder:<rung>:<outcome>[:<entities>]``) to the
    per-rung counts: pairs tried and their outcomes; under ``review``, the pairs the loop
    handed to people."""
    for step in rec.repair_steps:
        if not step.startswith("ladder:"):
            continue
        parts = step.split(":")
        if parts[1] == "review":
            out.setdefault("review", Counter())["pairs"] += 1
            continue
        n = out.setdefault(parts[1], Counter())
        if parts[2] != "budget":
            n["tried"] += 1
        n[parts[2]] += 1


def _deciding_reason(record: ParallelRecord) -> str:
    """The first reason that explains the record's status ("none" if nothing does)."""
    if record.status == Status.ACCEPTED:
        return "none"
    wanted = {Status.REJECTED: REJECT_REASONS, Status.REVIEW: REVIEW_REASONS}.get(record.status)
    for reason in record.reasons:  # failed and reviewed records: their first reason
        if wanted is None or reason in wanted:
            return str(reason)
    return "none"


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    pos = q * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(
    records: Iterable[ParallelRecord],
) -> tuple[QualityReport, dict[str, dict[str, array[float]]]]:
    """Counts of a run, and the raw values of each score by status, for plotting (packed
    floats, 8 bytes a value: a run of 257k pairs keeps about 12 MB of them)."""
    by_status: Counter[str] = Counter()
    deciding: dict[str, Counter[str]] = {}
    by_reason: Counter[str] = Counter()
    values: dict[str, dict[str, array[float]]] = {}
    audit = reviewed = good = 0
    provenance: Counter[str] = Counter()
    repair: dict[str, Counter[str]] = {}
    total = 0
    for record in records:
        total += 1
        _count_steps(record, repair)
        status = str(record.status)
        by_status[status] += 1
        deciding.setdefault(status, Counter())[_deciding_reason(record)] += 1
        by_reason.update(str(r) for r in dict.fromkeys(record.reasons))
        for name, value in record.scores.items():
            if math.isfinite(value):
                values.setdefault(name, {}).setdefault(status, array("d")).append(value)
        provenance[
            f"{record.pipeline_version}|{record.prompt_version}|{record.model}|{record.config_hash}"
        ] += 1
        if Reason.AUDIT_SAMPLE in record.automatic_reasons():
            audit += 1
            if record.status in (Status.REVIEWED_ACCEPTED, Status.REVIEWED_REJECTED):
                reviewed += 1
                good += record.status == Status.REVIEWED_ACCEPTED
    scores = {}
    for name, by in sorted(values.items()):
        ordered = sorted(itertools.chain.from_iterable(by.values()))
        scores[name] = {
            "n": len(ordered),
            "mean": sum(ordered) / len(ordered),
            "p05": _quantile(ordered, 0.05),
            "p50": _quantile(ordered, 0.5),
            "p95": _quantile(ordered, 0.95),
        }
    precision = None
    if reviewed:
        low, high = wilson_interval(good, reviewed)
        precision = PrecisionEstimate(reviewed, good, good / reviewed, low, high)
    report = QualityReport(
        total=total,
        by_status={s.value: by_status[s.value] for s in Status if by_status[s.value]},
        deciding_reason={s: dict(c.most_common()) for s, c in sorted(deciding.items())},
        by_reason=dict(by_reason.most_common()),
        scores=scores,
        audit_sample=audit,
        provenance=dict(provenance.most_common()),
        precision=precision,
        repair={rung: dict(n) for rung, n in repair.items()},
    )
    return report, values


def _plot(values: dict[str, dict[str, array[float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in PLOTTED_SCORES if n in values] + sorted(
        n for n in values if n not in PLOTTED_SCORES
    )
    cols = 3
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        by = values[name]
        statuses = [s for s in Status if by.get(s.value)]
        data = [by[s.value] for s in statuses]
        ax.hist(
            data,
            bins=30,
            stacked=True,
            label=[s.value for s in statuses],
            color=[_STATUS_COLORS[s] for s in statuses],
        )
        ax.set_title(f"{name} (n={sum(map(len, by.values()))})", fontsize=10)
        ax.set_ylabel("pairs", fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    if names:
        axes.flat[0].legend(fontsize=7)
    else:
        axes.flat[0].text(0.5, 0.5, "no scores", ha="center", va="center")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(report: QualityReport, title: str, plot_name: str) -> str:
    lines = [
        f"# {title}",
        "",
        f"{report.total} pairs.",
        "",
        "| status | pairs | share |",
        "|---|---:|---:|",
    ]
    for status, n in report.by_status.items():
        lines.append(f"| {status} | {n} | {n / report.total:.1%} |")
    lines.append(f"| **total** | **{sum(report.by_status.values())}** | |")
    lines += [
        "",
        "## Deciding reason per status",
        "",
        "Each pair counted once, under the first reason that explains its status.",
        "",
        "| status | reason | pairs |",
        "|---|---|---:|",
    ]
    for status, reasons in report.deciding_reason.items():
        for reason, n in reasons.items():
            lines.append(f"| {status} | {reason} | {n} |")
    lines += [
        "",
        "## All reasons",
        "",
        "A pair may carry several reasons.",
        "",
        "| reason | pairs |",
        "|---|---:|",
    ]
    lines += [f"| {r} | {n} |" for r, n in report.by_reason.items()]
    if report.repair:
        lines += [
            "",
            "## Repair loop",
            "",
            "Pairs in doubt climb these rungs before review (`parallelner.stages.ladder`). "
            "Fixed: no doubt left after the rung; better: kept, doubts left.",
            "",
            "| rung | tried | fixed | better | failed | no answer | over budget "
            "| requests | tokens |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for rung, n in report.repair.items():
            if rung == "review":
                continue
            tokens = n.get("prompt_tokens", 0) + n.get("completion_tokens", 0)
            lines.append(
                f"| {rung} | {n.get('tried', 0)} | {n.get('fixed', 0)} | {n.get('better', 0)} "
                f"| {n.get('failed', 0)} | {n.get('no_answer', 0)} | {n.get('budget', 0)} "
                f"| {n.get('requests', '–')} | {tokens or '–'} |"
            )
        left = report.repair.get("review", {}).get("pairs", 0)
        lines += ["", f"{left} pairs went to review with every rung spent."]
    lines += [
        "",
        "## Scores",
        "",
        "| score | n | mean | p05 | p50 | p95 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in report.scores.items():
        lines.append(
            f"| {name} | {s['n']:.0f} | {s['mean']:.3g} | {s['p05']:.3g} | "
            f"{s['p50']:.3g} | {s['p95']:.3g} |"
        )
    lines += ["", f"![score distributions]({plot_name})", "", "## Precision of accepted", ""]
    p = report.precision
    if p is None:
        lines.append(f"Audit sample: {report.audit_sample} pairs, none reviewed yet.")
    else:
        lines.append(
            f"Audit sample: {report.audit_sample} pairs, {p.reviewed} reviewed, "
            f"{p.good} judged good: precision {p.precision:.1%} "
            f"(95% Wilson interval {p.low:.1%} to {p.high:.1%})."
        )
    lines += ["", "## Provenance", "", "| pipeline | prompt | model | config hash | pairs |",
              "|---|---|---|---|---:|"]  # fmt: skip
    for key, n in report.provenance.items():
        lines.append("| " + " | ".join(key.split("|", 3)) + f" | {n} |")
    if report.thresholds:
        lines += ["", f"Quality settings: `{report.thresholds}`"]
    return "\n".join(lines) + "\n"


_IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)\s:]+\.png)\)")


def inline_images(markdown: str, base_dir: Path) -> str:
    """``markdown`` with its relative PNG links (``![..](scores.png)``) as data URIs.

    For viewers that have the text but not the report's directory (the Prefect UI shows a
    markdown artifact without the files next to it). A link to a missing file is kept.
    """

    def inline(m: re.Match[str]) -> str:
        path = Path(base_dir) / m.group(2)
        if not path.is_file():
            return m.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"![{m.group(1)}](data:image/png;base64,{data})"

    return _IMAGE_LINK.sub(inline, markdown)


def thresholds_signature(quality: QualitySettings) -> str:
    """The quality settings as one readable line (``min_chrf:25.0|review_chrf:40.0|...``)."""
    data = quality.model_dump(mode="json")
    return "|".join(
        f"{k}:{json.dumps(v, sort_keys=True, separators=(',', ':'))}" for k, v in data.items()
    )


def write_report(
    records: Iterable[ParallelRecord],
    out_dir: Path,
    *,
    title: str = "Quality report",
    quality: QualitySettings | None = None,
    repair_costs: dict[str, dict[str, int]] | None = None,
) -> QualityReport:
    """Summarize ``records`` and write ``report.json``, ``report.md`` and ``scores.png``.

    Pass ``quality`` (the settings the run used) to record its thresholds in the report.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(
            f"{out_dir}: exists and is not a directory; give a directory for the report"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, or no permission: a user's mistake
        raise ConfigError(
            f"{out_dir}: cannot create the report directory ({exc.strerror})"
        ) from None
    report, values = summarize(records)
    for rung, costs in (repair_costs or {}).items():  # requests and tokens, per rung
        if rung in report.repair:
            report.repair[rung].update(
                {k: v for k, v in costs.items()
                 if k in ("questions", "requests", "prompt_tokens", "completion_tokens")}
            )  # fmt: skip
    if quality is not None:
        report.thresholds = thresholds_signature(quality)
    plot = out_dir / "scores.png"
    _plot(values, plot, f"{title}: {report.total} pairs")
    md = out_dir / "report.md"
    md.write_text(_markdown(report, title, plot.name), encoding="utf-8")
    js = out_dir / "report.json"
    report.files = {"markdown": str(md), "plot": str(plot), "json": str(js)}
    js.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    return report

"""``parallelner project``: place source entities in existing (human) translations."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from parallelner_cli._common import (
    ConfigOption,
    HomeOption,
    JsonOption,
    LLMBaseURLOption,
    LLMModelOption,
    MaxInFlightOption,
    console,
    print_json,
    settings_from,
)

if TYPE_CHECKING:
    from parallelner.jobs.project import CommitSummary


class LLMChoice(StrEnum):
    """Which LLM helps the projection."""

    none = "none"
    default = "default"


def register(app: typer.Typer) -> None:
    """Add the ``project`` command to the CLI."""
    app.command("project")(project)


def project(
    input: Annotated[
        Path,
        typer.Argument(
            help="Projection tasks, JSONL: {id, source: {lang, text, entities}, "
            "target: {lang, text}} (extra keys are carried through).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Output JSONL: one line per input line, with "
            "target.entities and unprojected (with reasons).",
            show_default=False,
        ),
    ],
    llm: Annotated[
        LLMChoice,
        typer.Option(
            "--llm",
            help="'none': string matching of the source mention only "
            "(exact, normalised, fuzzy). 'default': the configured LLM translates "
            "each mention in context, then repair rungs (a) mention-as-written and "
            "(c) fallback model run; the translation itself is never rewritten.",
        ),
    ] = LLMChoice.default,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            min=0.0,
            max=1.0,
            help="Minimum fuzzy score 0..1; 0 turns fuzzy matching off \\[setting project.fuzzy_threshold, default 0.8].",
            show_default=False,
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            help="Comma-separated allowed source labels (default: "
            "every label of the known datasets' label maps).",
            show_default=False,
        ),
    ] = None,
    no_repair: Annotated[
        bool, typer.Option("--no-repair", help="With --llm default: skip the repair rungs.")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Stop at the first faulty input line with a "
            "'file:line: fault' error (invalid JSON, bad fields, invalid entity "
            "offsets, unknown label, empty target, target in an unexpected script, "
            "mention longer than the target); nothing is written. Without it, "
            "faulty lines get their reasons in the output.",
        ),
    ] = False,
    commit: Annotated[
        bool,
        typer.Option(
            "--commit",
            help="Then keep the pairs as dataset rows: run the automatic quality checks "
            "(accepted / review / rejected, as in a run; a human translation is not "
            "back-translated) and commit them as one snapshot, with a quality report under "
            "<home>/reports. The same input and settings again commit nothing new. Needs --dataset.",
        ),
    ] = False,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="With --commit: the source corpus of the pairs (europarl, pud, wikineural...): "
            "the rows' source_dataset, which names the licence in an export's card and the "
            "label map in training.",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOption = False,
    config: ConfigOption = None,
    home: HomeOption = None,
    llm_base_url: LLMBaseURLOption = None,
    llm_model: LLMModelOption = None,
    max_in_flight: MaxInFlightOption = None,
) -> None:
    """Project entity spans onto existing translations (Europarl, PUD, your own).

    Every input line gives exactly one output line. Each projected entity records its method (exact, normalized, fuzzy, source_copy, repair_mention, repair_fallback) and score; every entity left out is listed in 'unprojected' with a reason. A summary of counts by method and reason is printed at the end.

    Example: parallelner project data/projection-dev/europarl-en-de.jsonl -o de.jsonl --llm none

    Keep them as a dataset snapshot: add --commit --dataset europarl.
    """
    from parallelner.errors import ConfigError
    from parallelner.jobs.project import commit_projected, known_labels, run_project

    if commit and not dataset:
        raise ConfigError("--commit needs --dataset: the source corpus of the pairs "
                          "(e.g. --dataset europarl); it names their licence and label map")  # fmt: skip
    if dataset and not commit:
        raise ConfigError("--dataset is only used with --commit")

    settings = settings_from(
        config,
        home=home,
        llm_base_url=llm_base_url,
        llm_model=llm_model,
        llm_max_in_flight=max_in_flight,
    )
    allowed = (
        frozenset(x.strip() for x in labels.split(",") if x.strip()) if labels else known_labels()
    )
    summary = run_project(
        input,
        output,
        threshold=settings.project.fuzzy_threshold if threshold is None else threshold,
        strict=strict,
        labels=allowed,
        llm=settings if llm is LLMChoice.default else None,
        repair=settings.project.repair and not no_repair,
    )
    committed = None
    if commit:
        assert dataset is not None
        committed = commit_projected(
            input, output, settings, dataset=dataset, llm=llm is LLMChoice.default
        )
    if json_out:
        extra = {"commit": committed.as_dict()} if committed is not None else {}
        print_json({"input": str(input), "output": str(output), **summary.as_dict(), **extra})
        return
    table = Table(title=f"{input} -> {output}", show_edge=False)
    table.add_column("count", justify="right")
    table.add_column("what")
    table.add_row(str(summary.lines), "lines")
    table.add_row(str(summary.complete), "lines with every entity placed")
    table.add_row(str(summary.faulty_lines), "lines with input faults")
    table.add_row(str(summary.entities), "source entities")
    for method, n in summary.methods.most_common():
        table.add_row(str(n), f"placed: {method}")
    for reason, n in summary.reasons.most_common():
        table.add_row(str(n), f"reason: {reason}")
    for step, n in summary.repair_steps.most_common():
        table.add_row(str(n), f"repair step: {step}")
    console.print(table)
    if committed is not None:
        _print_commit(committed)


def _print_commit(c: CommitSummary) -> None:
    """The rows' statuses, the snapshot (new or earlier) and the report."""
    statuses = ", ".join(f"{s} {n}" for s, n in c.by_status.items()) or "no rows"
    console.print(f"quality checks: {statuses}", highlight=False)
    if c.not_committed:
        console.print(
            f"not committed: {c.not_committed} lines with input faults (their reasons are "
            "in the output file)",
            highlight=False,
        )
    if c.snapshot_new:
        console.print(f"snapshot: {c.snapshot_id} (run {c.run_id})", highlight=False)
    else:
        console.print(
            f"snapshot: {c.snapshot_id} (run {c.run_id}, committed before from the same "
            "input and settings: nothing new)",
            highlight=False,
        )
    console.print(f"report: {c.report_dir}", highlight=False)

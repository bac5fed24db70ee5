"""`parallelner quality`: assess pairs and render the quality report of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from parallelner.errors import ConfigError, InputError
from parallelner.readers.records import read_records
from parallelner.reasons import Reason
from parallelner.records import ParallelRecord
from parallelner_cli._common import ConfigOption, JsonOption, console, print_json, settings_from

quality_app = typer.Typer(
    help="Stage 3: automatic quality checks, routing (accepted / review / rejected), "
    "and the run report.",
    no_args_is_help=True,
)

InputArg = Annotated[
    Path,
    typer.Argument(
        help="File of ParallelRecords: .parquet (the dataset's Arrow schema) or .jsonl "
        "(one record a line).",
        show_default=False,
    ),
]


def _write_records(records: list[ParallelRecord], path: Path) -> None:
    """Write ``records`` atomically (temporary file, then rename) as .parquet or .jsonl."""
    from parallelner.records import records_to_table
    from parallelner.writers.atomic import AtomicTextWriter, write_table

    try:
        if path.suffix == ".parquet":
            write_table(records_to_table(records), path)
        else:
            with AtomicTextWriter(path) as out:
                for r in records:
                    out.write_line(r.model_dump_json())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None


@quality_app.command("report")
def report(
    input: InputArg,
    out_dir: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Directory for report.md, report.json and scores.png (created).",
            show_default=False,
        ),
    ],
    title: Annotated[str, typer.Option(help="Title of the report.")] = "Quality report",
    json_: JsonOption = False,
) -> None:
    """Render the quality report of a file of ParallelRecords.

    Counts by status (they add up to the number of records) and by reason, score
    distributions as a PNG, a markdown summary, and, once reviewers answered the audit
    sample, the precision of `accepted` with a 95% Wilson interval.

    Example: parallelner quality report assessed.parquet -o report/
    """
    from parallelner.quality.report import write_report

    rep = write_report(read_records(input), out_dir, title=title)
    if json_:
        print_json(rep.to_dict())
        return
    console.print(
        f"{rep.total} records: " + ", ".join(f"{s} {n}" for s, n in rep.by_status.items())
    )
    if rep.precision is not None:
        p = rep.precision
        console.print(
            f"precision of accepted: {p.precision:.1%} "
            f"(95% CI {p.low:.1%}-{p.high:.1%}, {p.reviewed} reviewed)"
        )
    for name, path in rep.files.items():
        console.print(f"{name}: {path}", highlight=False)


@quality_app.command("assess")
def assess(
    input: InputArg,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Assessed records: .parquet or .jsonl.", show_default=False
        ),
    ],
    config: ConfigOption = None,
    json_: JsonOption = False,
) -> None:
    """Run the automatic checks on drafts and route each to accepted / review / rejected.

    Every input record comes out exactly once, with its status, reasons and scores;
    failed and human-reviewed records are kept unchanged. Thresholds: the `quality`
    section of the settings (`parallelner config show`).

    Example: parallelner quality assess drafts.jsonl -o assessed.parquet --config run.yaml

    Exit 2 with one `file:line: fault` line when an input line is not a ParallelRecord.
    """
    from collections import Counter

    from parallelner.quality import assess_stream

    if output.suffix not in (".parquet", ".jsonl"):
        raise InputError(
            str(output), None, Reason.MALFORMED_LINE, "output must be .parquet or .jsonl"
        )
    settings = settings_from(config)
    records = list(assess_stream(read_records(input), settings))
    _write_records(records, output)
    counts = dict(Counter(str(r.status) for r in records))
    if json_:
        print_json({"records": len(records), "by_status": counts, "output": str(output)})
    else:
        console.print(
            f"{len(records)} records -> {output}: "
            + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())),
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    app.add_typer(quality_app, name="quality")

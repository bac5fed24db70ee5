"""`parallelner quality`: assess pairs and render the quality report of a run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from parallelner.cli._common import ConfigOption, JsonOption, console, print_json, settings_from
from parallelner.errors import ConfigError, InputError
from parallelner.reasons import Reason
from parallelner.records import ParallelRecord

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


def _validation_detail(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "record"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"not a ParallelRecord: {loc}: {err['msg']}{more}"


def _read_records(path: Path) -> Iterator[ParallelRecord]:
    """ParallelRecords from .parquet or .jsonl; bad input -> InputError(file:line)."""
    if path.is_dir():
        raise InputError(str(path), None, Reason.UNREADABLE_FILE, "is a directory, not a file")
    if not path.is_file():
        raise InputError(str(path), None, Reason.UNREADABLE_FILE, "no such file")
    if path.suffix == ".parquet":
        return iter(_read_parquet(path))
    if path.suffix == ".jsonl":
        return _iter_jsonl(path)
    raise InputError(str(path), None, Reason.MALFORMED_LINE, "expected a .parquet or .jsonl file")


def _read_parquet(path: Path) -> list[ParallelRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from parallelner.records import table_to_records

    try:
        table = pq.read_table(path)
        return table_to_records(table)  # type: ignore[return-value]
    except (OSError, pa.ArrowException) as exc:
        raise InputError(str(path), None, Reason.MALFORMED_LINE, f"not Parquet: {exc}") from None
    except (KeyError, ValidationError) as exc:
        detail = (
            _validation_detail(exc) if isinstance(exc, ValidationError) else f"missing column {exc}"
        )
        raise InputError(str(path), None, Reason.MALFORMED_LINE, detail) from None


def _iter_jsonl(path: Path) -> Iterator[ParallelRecord]:
    # binary lines, decoded one by one: a bad byte is reported at its own line (a text
    # file object decodes 8 KiB at a time and would name an earlier line)
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    str(path),
                    number,
                    Reason.INVALID_UTF8,
                    f"not UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line)",
                ) from None
            if not line.strip():
                continue
            try:
                yield ParallelRecord.model_validate_json(line)
            except ValidationError as exc:
                reason = (
                    Reason.INVALID_JSON
                    if exc.errors()[0]["type"] == "json_invalid"
                    else Reason.MALFORMED_LINE
                )
                raise InputError(str(path), number, reason, _validation_detail(exc)) from None


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

    rep = write_report(_read_records(input), out_dir, title=title)
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
    records = list(assess_stream(_read_records(input), settings))
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

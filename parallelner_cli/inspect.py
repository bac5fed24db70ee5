"""`parallelner inspect FILE`: validate a corpus file and summarise what was read."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from parallelner_cli._common import JsonOption, console, print_json

__all__ = ["inspect_file", "register"]


class Format(StrEnum):
    conll = "conll"
    wikineural = "wikineural"
    cluener = "cluener"
    jsonl = "jsonl"
    parquet = "parquet"


class Scheme(StrEnum):
    iob2 = "iob2"
    iob1 = "iob1"
    bioes = "bioes"


def inspect_file(
    path: Path,
    format: str | None = None,  # noqa: A002 - the user-facing name
    *,
    strict: bool = False,
    quarantine: Path | None = None,
    lang: str | None = None,
    dataset: str | None = None,
    **opts: Any,
) -> dict[str, Any]:
    """Read ``path`` completely and return its summary (``ReadReport.to_dict()`` + timing).

    Quarantined inputs go to ``quarantine`` (JSONL) when a path is given. Raises
    ``InputError`` in strict mode at the first bad or repaired input.
    """
    from parallelner.readers import ReadReport, detect_format, read_instances
    from parallelner.writers import QuarantineWriter

    fmt = format or detect_format(path)
    report = ReadReport(path=str(path))
    t0 = time.perf_counter()
    if quarantine is not None:
        with QuarantineWriter(quarantine) as sink:
            for _ in read_instances(
                path,
                fmt,
                strict,
                report=report,
                quarantine=sink.write,
                lang=lang,
                dataset=dataset,
                **opts,
            ):
                pass
    else:
        for _ in read_instances(
            path, fmt, strict, report=report, lang=lang, dataset=dataset, **opts
        ):
            pass
    out = report.to_dict()
    out["seconds"] = round(time.perf_counter() - t0, 3)
    out["quarantine_file"] = str(quarantine) if quarantine is not None else None
    return out


def _print_summary(s: dict[str, Any]) -> None:
    console.print(f"{s['path']} ({s['format']})", style="bold", highlight=False, markup=False)
    table = Table(show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("sentences", f"{s['sentences']:,}")
    table.add_row("entities", f"{s['entities']:,}")
    for label, n in s["entities_by_label"].items():
        table.add_row(f"  {label}", f"{n:,}")
    table.add_row("repaired", f"{s['repaired']:,}", style="yellow" if s["repaired"] else None)
    for reason, n in s["repaired_by_reason"].items():
        table.add_row(f"  {reason}", f"{n:,}")
    table.add_row("quarantined", f"{s['quarantined']:,}", style="red" if s["quarantined"] else None)
    for reason, n in s["quarantined_by_reason"].items():
        table.add_row(f"  {reason}", f"{n:,}")
    console.print(table)
    for title, key in (("repaired", "repaired_examples"), ("quarantined", "quarantined_examples")):
        if s[key]:
            console.print(f"[bold]first {title} inputs:[/]")
            for ex in s[key]:
                console.print(
                    f"  {ex['where']}: {ex['detail']} [{ex['reason']}]",
                    highlight=False,
                    markup=False,
                    soft_wrap=True,
                )
    if s.get("quarantine_file"):
        console.print(f"quarantined inputs written to {s['quarantine_file']}", highlight=False)
    console.print(f"read in {s['seconds']:.2f} s", style="dim")


def inspect(
    file: Annotated[Path, typer.Argument(help="Corpus file to validate.", show_default=False)],
    format: Annotated[
        Format | None,
        typer.Option(
            "--format",
            "-f",
            help="Input format. Default: detected from the content "
            "(Parquet magic, JSON keys, columns), then the extension.",
            show_default=False,
        ),
    ] = None,
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            help="Language (BCP-47) when the file does not say "
            "(default: en for conll/wikineural, zh for cluener).",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="Label map to check labels against (conll, wikineural, "
            "cluener, ontonotes...) (default: from the format, or each record's "
            "source_dataset).",
            show_default=False,
        ),
    ] = None,
    scheme: Annotated[
        Scheme, typer.Option("--scheme", help="Tagging scheme of column files.")
    ] = Scheme.iob2,
    token_col: Annotated[
        int | None,
        typer.Option(
            "--token-col",
            help="0-based token column of column files (default: 0 for conll, 1 for wikineural).",
            show_default=False,
        ),
    ] = None,
    tag_col: Annotated[
        int | None,
        typer.Option(
            "--tag-col",
            help="Tag column of column files, negative from the end (default: -1, the last).",
            show_default=False,
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Stop at the first bad or repaired input with "
            "'file:line: what is wrong' (exit 2) instead of quarantining it.",
        ),
    ] = False,
    quarantine: Annotated[
        Path | None,
        typer.Option(
            "--quarantine",
            "-q",
            help="Write quarantined inputs here as JSONL (path, line, reason, detail, raw).",
            show_default=False,
        ),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Validate FILE and summarise it: sentences, entities per label, repairs, quarantine.

    Every input ends as a sentence (possibly repaired) or as a quarantined line with its reason.

    Repaired: an I- tag after O or another type starts a new entity (conlleval reading).

    Exit 0 when the file was read, even with quarantined lines; 2 when --strict stops or the file cannot be read.

    Examples:

      parallelner inspect data/sources/wikineural-en-val.conllu

      parallelner inspect data/sources/cluener-train.json --json

      parallelner inspect corpus.iob --scheme bioes --token-col 0 --tag-col 3 --strict

      parallelner inspect pairs.jsonl --dataset conll -q quarantine.jsonl
    """
    opts: dict[str, Any] = {}
    fmt = format.value if format is not None else None
    if fmt is None:
        from parallelner.readers import detect_format

        fmt = detect_format(file)
    if fmt in ("conll", "wikineural"):
        opts["scheme"] = scheme.value
        if token_col is not None:
            opts["token_col"] = token_col
        if tag_col is not None:
            opts["tag_col"] = tag_col
    elif token_col is not None or tag_col is not None or scheme != Scheme.iob2:
        raise typer.BadParameter(
            "--token-col, --tag-col and --scheme apply to conll/wikineural files only"
        )
    summary = inspect_file(
        file, fmt, strict=strict, quarantine=quarantine, lang=lang, dataset=dataset, **opts
    )
    if json_:
        print_json(summary)
    else:
        _print_summary(summary)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)

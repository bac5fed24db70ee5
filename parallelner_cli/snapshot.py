"""`parallelner snapshot ...`: list, show, diff, tag, export, upload and verify snapshots;
recover-catalog after a catalog lost the table."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from parallelner_cli._common import (
    ConfigOption,
    HomeOption,
    JsonOption,
    console,
    print_json,
    settings_from,
)

snapshot_app = typer.Typer(
    help="Versioned dataset snapshots: every run and review pull commits one; tag a "
    "snapshot to release it under an immutable name, then export or load it "
    "(parallelner.load_snapshot(NAME)). Catalog: <home>/catalog.db or "
    "PARALLELNER_CATALOG_URI; warehouse: <home>/warehouse or PARALLELNER_WAREHOUSE.",
    no_args_is_help=True,
)

NameArg = Annotated[
    str, typer.Argument(help="A tag name, a snapshot id, or 'main' (latest).", show_default=False)
]


class ExportFormat(StrEnum):
    parquet = "parquet"
    jsonl = "jsonl"


@snapshot_app.command("list")
def list_(config: ConfigOption = None, home: HomeOption = None, json_: JsonOption = False) -> None:
    """List every snapshot, oldest first: id, time, run, rows changed, total, tags.

    Example: parallelner snapshot list --home ./.parallelner --json
    """
    from parallelner.store import list_snapshots

    snaps = list_snapshots(settings_from(config, home=home))
    if json_:
        print_json(snaps)
        return
    # fits 80 columns: no outer box, ids and times never folded, run ids fold
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    t.add_column("snapshot id", no_wrap=True)  # ids are what people copy
    t.add_column("committed UTC", no_wrap=True)
    t.add_column("op", no_wrap=True)
    t.add_column("run", overflow="fold", min_width=10)
    t.add_column("rows", justify="right", no_wrap=True)
    t.add_column("total", justify="right", no_wrap=True)
    t.add_column("tags", overflow="fold")
    for s in snaps:
        t.add_row(
            str(s["snapshot_id"]) + ("*" if s["current"] else ""),
            s["committed_at"][:16].replace("T", " "),
            {"overwrite": "replace"}.get(s["operation"] or "", s["operation"] or ""),
            s["run_id"] or "",
            row_changes_text(s),
            str(s["total_records"]),
            ", ".join(s["tags"]),
        )
    console.print(t)
    console.print("rows: +added ~changed -removed;  * = current (main)", highlight=False)


def row_changes_text(snap: dict[str, Any]) -> str:
    """``+25``, ``~2``, ``+3 ~2 -1``: what a snapshot did to the rows (``?``: not known)."""
    parts = []
    for sign, key in (("+", "added_records"), ("~", "changed_records"), ("-", "removed_records")):
        n = snap[key]
        if n is None:
            parts.append(f"{sign}?")
        elif n:
            parts.append(f"{sign}{n}")
    return " ".join(parts) or "0"


def _print_stats(stats: dict[str, Any]) -> None:
    # one row per status, one column per direction: fits 80 columns whatever the
    # statuses (a column per status cut "reviewed_accepted" to "reviewed_acce…")
    directions = list(stats["by_direction"])
    t = Table("status", *directions, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for c in t.columns[1:]:
        c.justify = "right"
    for status in sorted(stats["by_status"]):
        t.add_row(status, *[str(stats["by_direction"][d].get(status, 0)) for d in directions])
    t.add_section()
    t.add_row("records", *[str(stats["by_direction"][d]["records"]) for d in directions])
    console.print(t)
    console.print(
        f"acceptance rate: {stats['acceptance_rate']}   audited precision: "
        f"{stats['audited_precision'] if stats['audited_precision'] is not None else 'not known'}"
    )


@snapshot_app.command("show")
def show(
    name: NameArg, config: ConfigOption = None, home: HomeOption = None, json_: JsonOption = False
) -> None:
    """Describe a tag or snapshot: its release note (counts, acceptance, provenance).

    Example: parallelner snapshot show v1.0
    """
    from parallelner.store import show as show_snapshot

    note = show_snapshot(name, settings=settings_from(config, home=home))
    if json_:
        print_json(note)
        return
    console.print(
        f"[bold]{name}[/]: snapshot {note['snapshot_id']} committed "
        f"{note['snapshot_committed_at']}; tags: {', '.join(note['tags']) or 'none'}",
        highlight=False,
    )
    _print_stats(note["statistics"])
    prov = note["provenance"]
    for key in ("runs", "models", "prompt_versions", "pipeline_versions", "config_hashes"):
        console.print(f"{key.replace('_', ' ')}: {', '.join(prov[key]) or '-'}", highlight=False)
    for sig in prov.get("signatures", []):  # readable provenance, one line each
        console.print(f"signature: {sig}", highlight=False)


@snapshot_app.command("diff")
def diff(
    a: NameArg,
    b: NameArg,
    config: ConfigOption = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """What changed from A to B: records added, removed, changed, and status moves.

    Example: parallelner snapshot diff v1.0 main
    """
    from parallelner.store import diff_snapshots

    d = diff_snapshots(a, b, settings=settings_from(config, home=home))
    if json_:
        print_json(d)
        return
    console.print(
        f"{a} ({d['a']['records']} records) -> {b} ({d['b']['records']} records): "
        f"+{d['added']} added, -{d['removed']} removed, {d['changed']} changed, "
        f"{d['unchanged']} unchanged",
        highlight=False,
    )
    for move, n in d["status_changes"].items():
        console.print(f"  {move}: {n}", highlight=False)


@snapshot_app.command("tag")
def tag(
    name: Annotated[
        str,
        typer.Argument(
            help="New tag name: letters, digits, '.', '_', '-' "
            "(e.g. v1.0). An existing tag is never moved.",
            show_default=False,
        ),
    ],
    snapshot: Annotated[
        str | None,
        typer.Option(
            "--snapshot",
            help="Snapshot id or tag to release (default: the latest).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Release a snapshot under an immutable NAME, with a release note.

    Example: parallelner snapshot tag v1.0 --snapshot 4049008512816243212

    An existing tag is never moved or reused: tagging it again exits 2 with one line.
    """
    from parallelner.store import create_tag

    note = create_tag(name, snapshot, settings=settings_from(config, home=home))
    if json_:
        print_json(note)
        return
    console.print(
        f"tagged [bold]{name}[/] -> snapshot {note['snapshot_id']} "
        f"({note['statistics']['records']} records)",
        highlight=False,
    )
    _print_stats(note["statistics"])


@snapshot_app.command("export")
def export(
    name: NameArg,
    directory: Annotated[
        Path, typer.Argument(help="New or empty directory to write.", show_default=False)
    ],
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Keep only these statuses, comma-separated (e.g. "
            "accepted,reviewed_accepted) (default: all).",
            show_default=False,
        ),
    ] = None,
    format_: Annotated[
        ExportFormat, typer.Option("--format", help="Data file format.")
    ] = ExportFormat.parquet,
    splits: Annotated[
        str,
        typer.Option(
            "--splits",
            help="Split proportions by source instance id: NAME=P,... over train, "
            "validation, test (a split at 0 is left out).",
        ),
    ] = "train=0.8,validation=0.1,test=0.1",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split hash.")] = 0,
    include_raw: Annotated[
        bool,
        typer.Option("--include-raw", help="Also export raw LLM replies (raw_reply)."),
    ] = False,
    keep_annotators: Annotated[
        bool,
        typer.Option(
            "--keep-annotators",
            help="Export annotator identities as recorded (default: pseudonymised).",
        ),
    ] = False,
    hub: Annotated[
        str | None,
        typer.Option(
            "--hub",
            help="Then upload the export to this Hub dataset repo (e.g. org/parallelner); "
            "token from HF_TOKEN or `hf auth login`, endpoint from HF_ENDPOINT.",
            show_default=False,
        ),
    ] = None,
    private: Annotated[
        bool, typer.Option("--private", help="With --hub: create the repo private.")
    ] = False,
    config: ConfigOption = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Export a snapshot in the layout `datasets.load_dataset(DIR)` and the Hub read.

    Example: parallelner snapshot export v1.0 out/v1.0 --status accepted,reviewed_accepted --format jsonl

    Writes data/<split>-NNNNN-of-NNNNN.<format> (train/validation/test by source instance), a dataset card README.md with Hub YAML, metadata.json and SHA256SUMS.

    Annotators are pseudonymised and raw LLM replies left out unless asked.

    Nothing is half-written: the files are verified, then the directory is moved into place.
    """
    from parallelner.store import export_snapshot, upload_export

    meta = export_snapshot(
        name,
        directory,
        status=status,
        fmt=format_.value,
        splits=splits,
        seed=seed,
        include_raw=include_raw,
        pseudonymise=not keep_annotators,
        settings=settings_from(config, home=home),
    )
    pushed = upload_export(directory, hub, private=private or None) if hub else None
    if json_:
        print_json(
            {k: v for k, v in meta.items() if k != "schema"}
            | ({"upload": pushed} if pushed else {})
        )
        return
    sizes = ", ".join(f"{s} {i['records']}" for s, i in meta["splits"].items())
    console.print(
        f"exported {meta['records']} records of {name} (snapshot "
        f"{meta['snapshot_id']}) to {directory} ({sizes}); checksums verified",
        highlight=False,
    )
    if pushed:
        console.print(f"uploaded to {pushed['url']} (commit {pushed['commit']})", highlight=False)


@snapshot_app.command("upload")
def upload(
    directory: Annotated[Path, typer.Argument(help="An export directory.", show_default=False)],
    repo_id: Annotated[
        str,
        typer.Argument(help="Hub dataset repo, e.g. org/parallelner.", show_default=False),
    ],
    private: Annotated[
        bool, typer.Option("--private", help="Create the repo private if it is new.")
    ] = False,
    revision: Annotated[
        str | None,
        typer.Option("--revision", help="Branch to commit to (default: main).", show_default=False),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            help="Hub URL \\[env HF_ENDPOINT, default https://huggingface.co].",
            show_default=False,
        ),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Push a verified export to a Hugging Face Hub dataset repo (one commit).

    Example: parallelner snapshot upload out/v1.0 my-org/parallelner-v1.0 --private

    The export is checked against SHA256SUMS first; files under data/ from an earlier upload are removed in the same commit. Token: HF_TOKEN or `hf auth login`.
    """
    from parallelner.store import upload_export

    result = upload_export(
        directory, repo_id, endpoint=endpoint, private=private or None, revision=revision
    )
    if json_:
        print_json(result)
        return
    console.print(
        f"uploaded {directory} to {result['url']} (commit {result['commit']})", highlight=False
    )


@snapshot_app.command("verify")
def verify(
    directory: Annotated[Path, typer.Argument(help="An export directory.", show_default=False)],
    json_: JsonOption = False,
) -> None:
    """Check an export's files against its SHA256SUMS (missing or changed files fail).

    Example: parallelner snapshot verify out/v1.0

    Exit 0 when every file matches; 2 with one line naming each missing or changed file.
    """
    from parallelner.store import verify_export

    result = verify_export(directory)
    if json_:
        print_json(result)
        return
    console.print(f"OK: {result['files']} files in {directory} match SHA256SUMS", highlight=False)


@snapshot_app.command("recover-catalog")
def recover_catalog(
    config: ConfigOption = None, home: HomeOption = None, json_: JsonOption = False
) -> None:
    """Register the dataset table again from the warehouse, after the catalog lost it.

    For a catalog file that was deleted (or a new, empty catalog database) while the
    warehouse still holds the table: its latest metadata file holds every snapshot and
    tag, and the catalog points at it again. Refused when the catalog holds the table.

    Example: parallelner snapshot recover-catalog --home .parallelner
    """
    from parallelner.store.table import recover_catalog as recover

    result = recover(settings_from(config, home=home))
    if json_:
        print_json(result)
        return
    console.print(
        f"recovered: {result['snapshots']} snapshots and {len(result['tags'])} tags from "
        f"{result['metadata']}",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(snapshot_app, name="snapshot")

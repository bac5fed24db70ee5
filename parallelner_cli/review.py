"""`parallelner review push|pull|status|config`: human review in Label Studio.

Thin commands over ``annotation.push`` / ``annotation.pull`` (imported inside the
commands, so the CLI starts fast and ``parallelner`` never imports Label Studio code
unless asked to).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from parallelner_cli._common import (
    ConfigOption,
    HomeOption,
    JsonOption,
    console,
    print_json,
    settings_from,
)

review_app = typer.Typer(
    help="Human review in Label Studio: push the `review` pairs as tasks, pull the "
    "decisions back as a new snapshot. URL and API key: PARALLELNER_LABEL_STUDIO_URL, "
    "PARALLELNER_LABEL_STUDIO_API_KEY (a personal access token or a legacy token).",
    no_args_is_help=True,
)

URLOption = Annotated[
    str | None,
    typer.Option("--label-studio-url", help="Label Studio base URL "
                 "[env PARALLELNER_LABEL_STUDIO_URL, default http://127.0.0.1:8080].",
                 show_default=False),
]  # fmt: skip
ProjectOption = Annotated[
    str | None,
    typer.Option("--project", help="Project title; the project is found by it, created on "
                 "first push [env PARALLELNER_LABEL_STUDIO_PROJECT, default 'ParallelNER review'].",
                 show_default=False),
]  # fmt: skip
SnapshotOption = Annotated[
    str,
    typer.Option("--snapshot", help="Dataset snapshot to read: a tag, a snapshot id or main."),
]
RecordsOption = Annotated[
    Path | None,
    typer.Option("--records", help="Read records from this JSONL file (one ParallelRecord a "
                 "line) instead of the dataset store.", show_default=False, dir_okay=False),
]  # fmt: skip


def _read_records(path: Path) -> list:
    from parallelner.readers.records import read_records

    return list(read_records(path))


def _show(report: dict, json_: bool, title: str) -> None:
    if json_:
        print_json(report)
        return
    console.print(f"[bold]{title}[/]")
    if report.get("project_url"):  # where the reviewers go: first, whole, clickable
        console.print(f"  open: {report['project_url']}", highlight=False, soft_wrap=True)
    for key, value in report.items():
        if (isinstance(value, list) and not value) or key == "project_url":
            continue
        shown = (
            json.dumps(value, ensure_ascii=False, default=str)
            if isinstance(value, dict | list)
            else value
        )
        console.print(f"  {key}: {shown}", highlight=False, soft_wrap=True)


def _show_preview(report: dict, json_: bool, url: str, project: str) -> None:
    """A dry run's report: the count, then one task as a reviewer sees it."""
    if json_:
        print_json({"label_studio_url": url, "project": project, **report})
        return
    console.print(
        f"[bold]dry run[/]: {report['would_push']} pairs in review would become tasks of "
        f"{project!r} on {url} (nothing was sent)",
        highlight=False,
    )
    task = report["example_task"]
    if task is None:
        return
    data = task["data"]
    spans = ", ".join(
        f"{r['value']['text']!r} {r['value']['labels'][0]}"
        for r in task["predictions"][0]["result"]
    )
    console.print("one task (what the reviewer sees):", highlight=False)
    for key, value in (
        (f"source ({data['src_lang']}, read only)", data["src_text"]),
        (f"translation ({data['tgt_lang']})", data["tgt_text"]),
        ("pre-filled spans (editable)", spans or "none"),
        ("why it is in review", data["why"]),
        ("the reviewer answers", "Accept, or Reject with a reason; spans can be corrected"),
    ):
        console.print(f"  {key}: {value}", highlight=False, soft_wrap=True)


@review_app.command("push")
def push_cmd(
    config: ConfigOption = None,
    home: HomeOption = None,
    label_studio_url: URLOption = None,
    project: ProjectOption = None,
    snapshot: SnapshotOption = "main",
    records: RecordsOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Connect to nothing: say how many tasks a push would import and show one "
            "task as Label Studio would receive it.",
        ),
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Import the pairs with status `review` as Label Studio tasks (idempotent).

    Creates the project on first use (found by title afterwards), widens its labels when
    new classes arrive, and imports each record once: tasks carry `record_id`, so a
    second push creates no duplicate. Projected target spans arrive as editable
    pre-annotations (model_version = pipeline and prompt version).
    """
    from annotation.client import connect
    from annotation.push import preview, preview_snapshot, push, push_snapshot

    s = settings_from(config, home=home, label_studio_url=label_studio_url,
                      label_studio_project=project)  # fmt: skip
    if dry_run:
        if records is not None:
            report = preview(_read_records(records))
        else:
            report = preview_snapshot(s, snapshot)
        _show_preview(report, json_, s.label_studio_url, s.label_studio_project)
        return
    if records is not None:
        report = push(_read_records(records), connect(s), s.label_studio_project)
    else:
        report = push_snapshot(s, snapshot)
    _show(report, json_, "pushed to Label Studio")


@review_app.command("pull")
def pull_cmd(
    config: ConfigOption = None,
    home: HomeOption = None,
    label_studio_url: URLOption = None,
    project: ProjectOption = None,
    snapshot: SnapshotOption = "main",
    records: RecordsOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="With --records: write the updated "
            "records here as JSONL (default: print only the report).",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,  # fmt: skip
    json_: JsonOption = False,
) -> None:
    """Read finished annotations and update the records (idempotent).

    Majority of Accept/Reject votes decides, a tie rejects; corrected spans come from the
    latest annotation on the winning side. Skipped tasks and tasks deleted in the UI
    leave their records in `review` (counted in the report). Without --records the
    changed rows are committed as one new dataset snapshot; nothing is committed when
    nothing changed, or when Label Studio cannot be used.
    """
    from annotation.client import connect
    from annotation.pull import pull, pull_snapshot

    s = settings_from(config, home=home, label_studio_url=label_studio_url,
                      label_studio_project=project)  # fmt: skip
    if records is not None:
        updated, report = pull(_read_records(records), connect(s), s.label_studio_project)
        if out is not None:
            from parallelner.writers.atomic import AtomicTextWriter

            with AtomicTextWriter(out) as writer:
                for r in updated:
                    writer.write_line(r.model_dump_json())
            report["written"] = str(out)
    else:
        report = pull_snapshot(s, snapshot)
    _show(report, json_, "pulled from Label Studio")


@review_app.command("status")
def status_cmd(
    config: ConfigOption = None,
    label_studio_url: URLOption = None,
    project: ProjectOption = None,
    json_: JsonOption = False,
) -> None:
    """Show the review project's counts on the server (tasks, finished, annotations)."""
    from annotation.client import connect
    from parallelner.errors import ReviewError

    s = settings_from(config, label_studio_url=label_studio_url, label_studio_project=project)
    client = connect(s)
    pid = client.find_project(s.label_studio_project)
    if pid is None:
        raise ReviewError(f"no project titled {s.label_studio_project!r} on {client.url}: "
                          "run `parallelner review push` first")  # fmt: skip
    report = {"url": client.url, "user": client.whoami(), **client.project_summary(pid)}
    _show(report, json_, "review project")


@review_app.command("config")
def config_cmd(
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset",
            help="Label map(s) whose "
            "ontology classes become labels (repeatable; default: every known "
            "dataset).",
            show_default=False,
        ),
    ] = None,  # fmt: skip
) -> None:
    """Print the labeling-config XML that push installs (for Label Studio's settings page)."""
    from annotation.config import labeling_config
    from parallelner.errors import ConfigError
    from schemas.label_maps import known_datasets, label_map_for

    names = dataset or known_datasets()
    classes: set[str] = set()
    for name in names:
        try:
            classes |= set(label_map_for(name).values())
        except KeyError:
            raise ConfigError(f"unknown dataset {name!r}; known: "
                              f"{', '.join(known_datasets())}") from None  # fmt: skip
    typer.echo(labeling_config(classes), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")

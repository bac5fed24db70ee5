"""`parallelner run`: the `synthesize` flow from the command line, with a progress bar."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from parallelner.cli._common import (
    ConfigOption,
    HomeOption,
    JsonOption,
    LLMBaseURLOption,
    LLMModelOption,
    MaxInFlightOption,
    console,
    console_err,
    print_json,
    settings_from,
)


def run(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="Source files: CoNLL/WikiNEuRal .conllu, CLUENER .json, span .jsonl or .parquet.",
            show_default=False,
        ),
    ],
    to: Annotated[
        str,
        typer.Option("--to", help="Target language (BCP-47: zh, en, de...).", show_default=False),
    ],
    src_lang: Annotated[
        str | None,
        typer.Option("--from", help="Source language, when the format's default is wrong."),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="Input format for every source (default: by extension and content)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Also write the run's rows as Parquet into this directory."
        ),
    ] = None,
    runner: Annotated[
        str, typer.Option("--runner", help="Shard task runner: threads | dask.")
    ] = "threads",
    workers: Annotated[
        int | None, typer.Option("--workers", help="Shards in parallel \\[default 4].", min=1)
    ] = None,
    shard_size: Annotated[
        int | None,
        typer.Option("--shard-size", help="Instances per shard \\[default 1000].", min=1),
    ] = None,
    config: ConfigOption = None,
    home: HomeOption = None,
    llm_base_url: LLMBaseURLOption = None,
    llm_model: LLMModelOption = None,
    max_in_flight: MaxInFlightOption = None,
    json_: JsonOption = False,
) -> None:
    """Translate, project and filter NER sources into one dataset snapshot.

    Runs the `synthesize` Prefect flow: on a temporary local Prefect API by default, or on
    the server at PREFECT_API_URL when that is set. A run that was killed resumes where
    it stopped when started again with the same sources and settings.

    Example: parallelner run examples/wikineural-en-sample.conllu --to zh
    """
    settings = settings_from(
        config,
        home=home,
        llm_base_url=llm_base_url,
        llm_model=llm_model,
        llm_max_in_flight=max_in_flight,
        workers=workers,
        shard_size=shard_size,
    )
    # Fail fast, before Prefect starts: languages, files, the LLM endpoint.
    from parallelner import pipeline

    pipeline.check_languages(to, src_lang)
    pipeline.check_sources(sources)
    pipeline.check_endpoint(settings)

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no egress noise
    # Prefect's first start migrates its database: on a busy 2-core machine that takes
    # longer than the ephemeral server's 20 s default, and the run died in start-up
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
    from flows.synthesize import make_task_runner, synthesize

    _quiet_user_errors()

    overrides = {
        k: v
        for k, v in {
            # absolute at submit time: the flow run's parameters (in the Prefect UI, and
            # for a re-run from there) must not depend on the submitting shell's directory
            "home": str(Path(settings.home).absolute()),
            "llm_base_url": settings.llm_base_url,
            "llm_model": settings.llm_model,
            "llm_max_in_flight": settings.llm_max_in_flight,
            "workers": settings.workers,
            "shard_size": settings.shard_size,
        }.items()
        if v is not None
    }
    flow = synthesize.with_options(task_runner=make_task_runner(runner, settings.workers))
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console_err,
        disable=json_,
        transient=False,
    )
    with progress:
        bar = progress.add_task("reading sources", total=None)

        waiting = {"llm_outage": 0, "llm_stalled": 0}

        def on_event(event: str, n: int) -> None:
            if event == "planned":
                progress.update(bar, total=n, description=f"instances -> {to}")
            elif event == "record":
                progress.advance(bar, n)
            elif event in waiting:  # what the run waits for, in the bar's own line
                waiting[event] = n
                note = ""
                if waiting["llm_outage"]:
                    note = f" (LLM server not answering for {waiting['llm_outage']} s: waiting)"
                elif waiting["llm_stalled"]:
                    note = f" ({waiting['llm_stalled']} LLM requests slow)"
                progress.update(bar, description=f"instances -> {to}{note}")

        remove = pipeline.add_progress_listener(on_event)
        try:
            summary = flow(
                sources=[str(p.absolute()) for p in sources],
                tgt_lang=to,
                src_lang=src_lang,
                fmt=fmt,
                config=_config_dict(config, overrides),
                output_dir=str(output.absolute()) if output else None,
            )
        except BaseException:
            progress.update(bar, visible=False)  # the error line alone says what happened
            raise
        finally:
            remove()
    if json_:
        print_json(summary)
    else:
        _print_summary(summary)
    unfinished = summary.get("unfinished") or {}
    if unfinished:
        from parallelner.errors import UnfinishedRun

        raise UnfinishedRun(
            f"{unfinished.get('rows', 0)} rows failed and {unfinished.get('requests', 0)} "
            f"LLM requests gave up because the LLM server was down, overloaded or too slow "
            f"(in {unfinished.get('shards', 0)} shards); run the same command again when it "
            "answers: only those are retried (paid replies come from the cache)"
        )


class _UserErrorFilter(logging.Filter):
    """Drop Prefect's logs (with tracebacks) of a user's error: main() prints it as one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from parallelner.errors import ParallelNERError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ParallelNERError):
            return False
        if record.levelno >= logging.ERROR:
            msg = record.getMessage()
            names = {c.__name__ for c in (ParallelNERError, *ParallelNERError.__subclasses__())}
            return not any(f"{n}(" in msg or f"{n}:" in msg for n in names)
        return True


def _quiet_user_errors() -> None:
    """Attach the filter to the console handlers Prefect's logging set-up installed."""
    loggers = [logging.getLogger()] + [
        logging.getLogger(n)
        for n in list(logging.Logger.manager.loggerDict)
        if n.startswith("prefect")
    ]
    for lg in loggers:
        for handler in lg.handlers:
            if not any(isinstance(f, _UserErrorFilter) for f in handler.filters):
                handler.addFilter(_UserErrorFilter())


def _config_dict(config: Path | None, overrides: dict) -> dict:
    """YAML settings merged with flags, for the flow's `config` parameter (no secrets)."""
    data: dict = {}
    if config is not None:
        from parallelner.settings import read_yaml_mapping

        data = read_yaml_mapping(config)
    data.update(overrides)
    for secret in ("llm_api_key", "label_studio_api_key"):
        data.pop(secret, None)  # secrets come from the environment, never from parameters
    return data


def _print_summary(summary: dict) -> None:
    table = Table(title=f"run {summary['run_id']}", show_lines=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for k, v in sorted(summary["counts"].items()):
        table.add_row(f"[bold]{k}[/]", str(v))
    for k, v in sorted(summary["reasons"].items(), key=lambda kv: -kv[1]):
        table.add_row(f"  reason {k}", str(v))
    for k, v in sorted(summary["read_counts"].items()):
        table.add_row(f"input {k}", str(v))
    for k in (
        "requests",
        "cache_hits",
        "retries",
        "failures",
        "reasks",
        "prompt_tokens",
        "completion_tokens",
    ):
        if k in summary["usage"]:
            table.add_row(f"llm {k}", str(summary["usage"][k]))
    for p in (50, 95, 99):
        if f"latency_p{p}_s" in summary["usage"]:
            table.add_row(f"llm latency p{p}", f"{summary['usage'][f'latency_p{p}_s']:.2f} s")
    table.add_row("acceptance rate", f"{summary['acceptance_rate']:.1%}")
    console.print(table)
    console.print(f"snapshot: [bold]{summary['snapshot_id']}[/]   report: {summary['report_dir']}")
    for f in summary.get("output_files", []):
        console.print(f"rows: {f}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)

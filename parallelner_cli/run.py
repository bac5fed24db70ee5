"""`parallelner run`: the `synthesize` flow from the command line, with a progress bar."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from parallelner_cli._common import (
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
        typer.Option(
            "--to",
            help="Target language (BCP-47: zh, en, de...; zh-Hant or zh-Hans asks for a Chinese script and the checks hold the reply to it).",
            show_default=False,
        ),
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
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="Label set of sources that do not name theirs: conll, wikineural, cluener "
            "(span JSONL with PER/ORG/LOC/MISC is read as conll without it).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=1,
            help="Only the first N usable instances (to try a slice).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Also write the run's rows as Parquet into this directory."
        ),
    ] = None,
    runner: Annotated[
        str,
        typer.Option(
            "--runner",
            help="Shard task runner: threads (in this process) | dask (a local Dask cluster "
            "for the run, or the scheduler at --dask-address).",
        ),
    ] = "threads",
    dask_address: Annotated[
        str | None,
        typer.Option(
            "--dask-address",
            help="With --runner dask: a running Dask scheduler (tcp://HOST:8786) whose "
            "workers process the shards; shards and rows then go to --storage-url \\[env "
            "PARALLELNER_DASK_ADDRESS].",
            show_default=False,
        ),
    ] = None,
    storage_url: Annotated[
        str | None,
        typer.Option(
            "--storage-url",
            help="Where shards and rows go: a path on a file system every worker shares, or "
            "s3://bucket/prefix (AWS_* credentials, as the warehouse) \\[default: under "
            "--home; env PARALLELNER_STORAGE_URL].",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Shards in parallel \\[default 4].", min=1)
    ] = None,
    shard_size: Annotated[
        int | None,
        typer.Option("--shard-size", help="Instances per shard \\[default 1000].", min=1),
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            help="Worker processes for the shards, each with its share of --max-in-flight "
            "and the same reply cache; 0 runs them on threads of this process \\[default: "
            "one per core for a run of 20,000 instances or more, else 0].",
            min=0,
            show_default=False,
        ),
    ] = None,
    batch: Annotated[
        bool,
        typer.Option(
            "--batch",
            help="Through a batch API, in rounds: every question the instances still need "
            "goes out as one job per round (the OpenAI Batch API at --llm-base-url, or "
            "`vllm run-batch` with batch.backend: vllm); half the price, hours not "
            "minutes. Killed and started again, it waits for the same job (never pays "
            "twice).",
        ),
    ] = False,
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
        processes=processes,
        dask_address=dask_address,
        storage_url=storage_url,
    )
    # Fail fast, before Prefect starts: languages, files, the LLM endpoint.
    from parallelner.llm.runtime import check_endpoint
    from parallelner.pipeline import check_home, check_languages, check_sources

    check_languages(to, src_lang)
    check_sources(sources)
    check_home(Path(settings.home))
    if dataset:
        from parallelner.readers.base import label_set

        label_set(dataset)  # an unknown dataset: one line now, not one per input line
    if batch:
        from parallelner.batchrun import batch_jobs

        batch_jobs(settings)  # the backend the settings name can be used (one line if not)
    if not (batch and settings.batch.backend == "vllm"):  # vllm run-batch: no server
        for warning in check_endpoint(settings):  # several endpoints, some unreachable
            console_err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    address = settings.dask_address if runner == "dask" else None
    if address:
        check_scheduler(address)

    from flows.server import api_for_workers, configure_run_logging, start_local_api

    configure_run_logging()  # before Prefect is imported: it reads its settings then
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
            "processes": settings.processes,
            "storage_url": _absolute(settings.storage_url),
        }.items()
        if v is not None
    }
    _secrets_to_environment(settings, config)
    flow = synthesize.with_options(
        task_runner=make_task_runner(runner, settings.workers, address=address)
    )
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
        # Prefect starts first (its first start on a machine migrates its database: that
        # can take minutes), then the sources are read
        bar = progress.add_task("starting Prefect", total=None)

        waiting = {"llm_outage": 0, "llm_stalled": 0, "llm_endpoints_down": 0}

        batch_state: dict[str, int] = {}

        def on_event(event: str, n: int) -> None:
            if event == "reading":
                progress.update(
                    bar,
                    description=f"reading sources ({n:,} instances)" if n else "reading sources",
                )
            elif event == "planned":
                progress.update(bar, total=n, description=f"instances -> {to}")
            elif event == "record":
                progress.advance(bar, n)
            elif event.startswith("batch_"):  # a batch run: the round, its job, the wait
                batch_state[event] = n
                b = batch_state
                what = f"round {b.get('batch_round', 0)}: {b.get('batch_questions', 0):,} questions"
                if b.get("batch_done_lines") is not None and b.get("batch_total_lines"):
                    what += f", {b['batch_done_lines']:,}/{b['batch_total_lines']:,} answered"
                if b.get("batch_wait_s"):
                    what += f", waiting {b['batch_wait_s']} s"
                progress.update(bar, description=f"instances -> {to} ({what})")
            elif event in waiting:  # what the run waits for, in the bar's own line
                waiting[event] = n
                note = ""
                if waiting["llm_outage"]:
                    note = f" (LLM server not answering for {waiting['llm_outage']} s: waiting)"
                elif waiting["llm_endpoints_down"]:
                    note = f" ({waiting['llm_endpoints_down']} LLM endpoint(s) taken out)"
                elif waiting["llm_stalled"]:
                    note = f" ({waiting['llm_stalled']} LLM requests slow)"
                progress.update(bar, description=f"instances -> {to}{note}")

        from parallelner.progress import listening

        try:

            def run_flow() -> Any:
                # the flow runs in a worker thread: the listener is installed there
                with listening(on_event), api_for_workers(start_local_api(), address):
                    return flow(
                        sources=[str(p.absolute()) for p in sources],
                        tgt_lang=to,
                        src_lang=src_lang,
                        fmt=fmt,
                        dataset=dataset,
                        limit=limit,
                        config=_config_dict(config, overrides),
                        config_file=str(config.absolute()) if config else None,
                        output_dir=str(output.absolute()) if output else None,
                        batch=batch,
                    )

            summary = _run_stoppable(run_flow, settings, lambda: progress.stop())
        except BaseException:
            progress.update(bar, visible=False)  # the error line alone says what happened
            raise
    if json_:
        print_json(summary)
    else:
        _print_summary(summary)
        _print_flow_run(summary)
    unfinished = summary.get("unfinished") or {}
    if unfinished:
        from parallelner.errors import UnfinishedRun

        raise UnfinishedRun(
            f"{unfinished.get('rows', 0)} rows failed and {unfinished.get('requests', 0)} "
            f"LLM requests gave up because the LLM server was down, overloaded or too slow "
            f"(in {unfinished.get('shards', 0)} shards); run the same command again when it "
            "answers: only those are retried (paid replies come from the cache)"
        )


def _absolute(location: str | None) -> str | None:
    """A local storage path made absolute (workers resolve it from their own directory);
    a URL as given."""
    if location is None or "://" in location:
        return location
    return str(Path(location).absolute())


def check_scheduler(address: str, timeout_s: float = 10.0) -> None:
    """Raise ConfigError unless a Dask scheduler answers at ``address`` (tcp://host:port)
    and, when it is on another machine, PREFECT_API_URL names a Prefect server (its
    workers report their task runs there)."""
    from urllib.parse import urlsplit

    from parallelner.errors import ConfigError

    try:
        parts = urlsplit(address if "://" in address else f"tcp://{address}")
        scheme, host, port = parts.scheme, parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        scheme = host = port = None
    if scheme not in ("tcp", "tls") or not host or not port:
        raise ConfigError(
            f"dask address {address!r}: expected tcp://HOST:PORT (the scheduler's address, "
            "e.g. tcp://10.0.0.5:8786)"
        )
    from flows.server import configured_api_url

    if host not in ("127.0.0.1", "localhost", "::1") and not configured_api_url():
        raise ConfigError(
            f"the Dask scheduler at {address} is on another machine: set PREFECT_API_URL to "
            "a Prefect server that its workers reach (they report the shard tasks there; "
            "this run's temporary Prefect API listens on this machine only)"
        )
    from distributed import Client

    try:
        with Client(address, timeout=timeout_s):
            pass
    except (OSError, TimeoutError) as exc:
        raise ConfigError(
            f"no Dask scheduler answers at {address} within {timeout_s:g} s "
            f"({type(exc).__name__}); start one (`dask scheduler`) or fix --dask-address "
            "/ PARALLELNER_DASK_ADDRESS"
        ) from None


def _run_stoppable(call: Callable[[], Any], settings: Any, before_exit: Callable[[], Any]) -> Any:
    """Run ``call()`` (the flow) in a thread; SIGINT or SIGTERM stop the run within seconds.

    The flow runs in a worker thread so that the signals reach this (main) thread and not
    Prefect's engine, whose SIGTERM handling reports the crash to its API first, and that
    API may be the ephemeral server the same signal just stopped (a run went on for
    minutes). On a signal: one line says what happens, requests in flight are abandoned
    (replies already received are committed in the reply cache), the temporary files of
    this process are removed, the ephemeral Prefect server is stopped, and the process
    exits with 128 + the signal number. Finished shards are kept (each is written
    atomically), so the same command resumes. A second signal exits at once.
    """
    import signal
    import threading

    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # re-raised in the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="flow-run", daemon=True)
    if threading.current_thread() is not threading.main_thread():
        target()  # signals can only be handled in the main thread: run as is
    else:
        stopping = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            code = 128 + signum
            if stopping.is_set():
                os._exit(code)
            stopping.set()
            before_exit()
            name = signal.Signals(signum).name
            console_err.print(
                f"[yellow]stopping ({name}):[/] requests in flight are abandoned; shards "
                "finished so far are kept. Run the same command again to resume (replies "
                "already received come from the cache).",
                highlight=False,
            )
            _stop_now(settings)
            os._exit(code)

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            worker.start()
            while worker.is_alive():
                worker.join(0.2)
                if _prefect_disk_full() and not stopping.is_set():
                    # Prefect's API cannot write its database: the flow would fail (or
                    # wait) on its next API call; stop now, as on a signal, in one line
                    stopping.set()
                    before_exit()
                    error = _prefect_home_full()
                    console_err.print(
                        f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True
                    )
                    _stop_now(settings)
                    os._exit(error.exit_code)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if "error" in outcome:
        if _prefect_disk_full():  # the flow failed on Prefect's API first
            raise _prefect_home_full() from None
        raise outcome["error"]
    return outcome.get("value")


def _prefect_disk_full() -> bool:
    from flows.server import prefect_disk_full

    return prefect_disk_full()


def _prefect_home_full() -> Exception:
    from flows.server import prefect_home_full

    return prefect_home_full()


def _stop_now(settings: Any) -> None:
    """What must happen before a stopped run exits: no temp files, no orphan server."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    from parallelner.writers.atomic import remove_temporaries

    with contextlib.suppress(OSError):
        remove_temporaries()  # atomic writes cut off midway: their outputs stay absent
    with contextlib.suppress(Exception):
        from flows.server import stop_local_api

        stop_local_api()  # the ephemeral API's uvicorn process (terminate, then kill)


class _UserErrorFilter(logging.Filter):
    """Drop Prefect's logs (with tracebacks) of a user's error: main() prints it as one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from parallelner.errors import ParallelNERError, is_no_space

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ParallelNERError):
            return False
        if record.levelno >= logging.WARNING and (
            is_no_space(exc) or is_no_space(RuntimeError(record.getMessage()))
        ):
            return False  # "Failed to write result: [Errno 28]": the run ends in one line
        if record.levelno >= logging.WARNING and _prefect_disk_full():
            return False  # Prefect's API failing on its full disk: the run's one line says it
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


# settings that are secrets, or may hold one (a URL's user:password@): never a flow
# parameter (the Prefect API stores those in clear and the UI shows them)
_SECRET_KEYS = ("llm_api_key", "label_studio_api_key", "catalog_uri", "llm_cache_url")


def _holds_secret(key: str, value: Any) -> bool:
    from parallelner.redaction import redact_url
    from parallelner.settings import URL_FIELDS

    if key in _SECRET_KEYS:
        return True
    return key in URL_FIELDS and isinstance(value, str) and redact_url(value) != value


def _config_dict(config: Path | None, overrides: dict) -> dict:
    """YAML settings merged with flags, for the flow's `config` parameter (no secrets).

    What holds a secret stays out: the flow reads it itself, from the YAML file (its path
    is the ``config_file`` parameter) or from the environment (``_secrets_to_environment``).
    """
    data: dict = {}
    if config is not None:
        from parallelner.settings import read_yaml_mapping

        data = read_yaml_mapping(config)
    data.update(overrides)
    return {k: v for k, v in data.items() if not _holds_secret(k, v)}


def _secrets_to_environment(settings: Any, config: Path | None) -> None:
    """Hand a flag's secret (``--llm-base-url http://user:PASS@host/v1``) to the flow
    through this process's environment, where it reads secrets, not its parameters.

    A secret from the environment or the YAML file needs nothing: the flow reads both.
    """
    from pydantic import SecretStr

    from parallelner.settings import load_settings

    def plain(value: Any) -> Any:
        return value.get_secret_value() if isinstance(value, SecretStr) else value

    without_flags = load_settings(config)
    for key in type(settings).model_fields:
        value = plain(getattr(settings, key))
        if value is None or not _holds_secret(key, value):
            continue
        if value != plain(getattr(without_flags, key)):
            os.environ[f"PARALLELNER_{key.upper()}"] = str(value)


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
        if k in summary["usage"] or k in ("requests", "cache_hits"):  # 0: nothing asked
            table.add_row(f"llm {k}", str(summary["usage"].get(k, 0)))
    for p in (50, 95, 99):
        if f"latency_p{p}_s" in summary["usage"]:
            table.add_row(f"llm latency p{p}", f"{summary['usage'][f'latency_p{p}_s']:.2f} s")
    if summary["usage"].get("endpoints"):
        from parallelner.llm.endpoints import endpoint_line

        for e in summary["usage"]["endpoints"]:
            table.add_row(f"llm endpoint {e['url']}", endpoint_line(e))
    if summary.get("ladder"):
        from parallelner.stages.ladder import ladder_line

        for rung, row in summary["ladder"].items():
            table.add_row(f"repair {rung}", ladder_line(row))
    table.add_row("acceptance rate", f"{summary['acceptance_rate']:.1%}")
    console.print(table)
    shards = summary.get("shards") or {}
    if shards.get("reused"):
        console.print(
            f"shards: {shards['total']}, of which {shards['reused']} finished by an earlier run "
            f"(their rows were reused: no LLM request for them)",
            highlight=False,
        )
    snap = f"snapshot: [bold]{summary['snapshot_id']}[/]"
    skipped = summary.get("rows_skipped") or 0
    if summary.get("snapshot_id") is not None and not summary.get("snapshot_new"):
        snap += (
            f" (all {skipped} rows were committed by earlier runs of overlapping input: "
            "nothing new)"
            if skipped
            else " (committed by an earlier run of the same input and settings: nothing new)"
        )
    elif skipped:
        console.print(
            f"rows: {skipped} already in the dataset (an earlier run of overlapping input, "
            "same settings) were left as they were; the others were committed",
            highlight=False,
        )
    console.print(f"{snap}   report: {summary['report_dir']}")
    for f in summary.get("output_files", []):
        console.print(f"rows: {f}")


def _print_flow_run(summary: dict) -> None:
    """The Prefect flow run behind the summary; its address when a Prefect UI shows it."""
    if summary.get("flow_run_id"):
        console.print(f"flow run: {summary['flow_run_name']}  (id {summary['flow_run_id']})")
    if summary.get("flow_run_url"):
        console.print(f"view at: {summary['flow_run_url']}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("run")(run)

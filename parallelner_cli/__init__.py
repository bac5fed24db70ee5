"""The one CLI, ``parallelner``: thin commands over the library's functions.

Each command group lives in its own module here and exposes ``register(app)``.
Library code raises typed exceptions (``parallelner.errors``); ``main`` turns them into
one clear line on stderr and exit code 2, never a traceback for a user's mistake.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys

# Prefect shows a telemetry notice on its first import in a terminal, and counts the
# install, unless DO_NOT_TRACK is set; the CLI keeps Prefect's analytics off (a user who
# turns them on with PREFECT_SERVER_ANALYTICS_ENABLED=true gets Prefect's default).
if os.environ.get("PREFECT_SERVER_ANALYTICS_ENABLED", "").lower() not in ("1", "true"):
    os.environ.setdefault("DO_NOT_TRACK", "1")

import typer  # noqa: E402
from rich.markup import escape  # noqa: E402

from parallelner.errors import ParallelNERError  # noqa: E402
from parallelner_cli._common import console_err  # noqa: E402

app = typer.Typer(
    name="parallelner",
    help="ParallelNER: translate NER corpora with an LLM, project the entity spans, "
    "filter the pairs, and keep the result as versioned datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Command modules, in the order their help is shown.
_COMMAND_MODULES = (
    "config",
    "inspect",
    "translate",
    "project",
    "quality",
    "run",
    "review",
    "snapshot",
    "serve",
    "train",
    "reasons",
)

for _name in _COMMAND_MODULES:
    if importlib.util.find_spec(f"parallelner_cli.{_name}") is not None:
        importlib.import_module(f"parallelner_cli.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    from parallelner_cli._help import tidy_help

    try:
        # `python -m parallelner_cli` too says `parallelner` in its usage lines
        tidy_help(typer.main.get_command(app))(standalone_mode=False, prog_name="parallelner")
    except ParallelNERError as exc:
        console_err.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console_err.print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click usage errors and the like
        if _is_usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if os.environ.get("PARALLELNER_DEBUG"):
            raise
        from parallelner.errors import NoSpaceError, is_no_space

        if is_no_space(exc):  # a write below the library's (Prefect's results, a library's)
            where = getattr(exc, "filename", None) or os.environ.get(
                "PARALLELNER_HOME", ".parallelner"
            )
            console_err.print(
                f"[bold red]error:[/] {escape(str(NoSpaceError(where)))}",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(NoSpaceError.exit_code)
        _unexpected(exc)


def _unexpected(exc: BaseException) -> None:
    """A failure that is not the user's (a bug, or Prefect's): one line, traceback to a file."""
    import traceback

    text = "".join(traceback.format_exception(exc))
    detail = str(exc).splitlines()[0] if str(exc) else ""
    for name in ("PARALLELNER_LLM_API_KEY", "PARALLELNER_LABEL_STUDIO_API_KEY",
                 "PARALLELNER_CATALOG_URI", "PARALLELNER_LLM_CACHE_URL", "OPENAI_API_KEY",
                 "HF_TOKEN"):  # fmt: skip
        secret = os.environ.get(name, "")
        if len(secret) >= 4:
            text, detail = text.replace(secret, "***"), detail.replace(secret, "***")
    where = _save_traceback(text)
    origin = "Prefect" if "/prefect/" in text.rsplit("Traceback", 1)[-1] else "ParallelNER"
    console_err.print(
        f"[bold red]error:[/] unexpected failure in {origin}: "
        f"{escape(type(exc).__name__)}: {escape(detail[:300])}"
        + (f" (traceback in {escape(where)}; PARALLELNER_DEBUG=1 prints it)" if where else ""),
        highlight=False,
        soft_wrap=True,
    )
    sys.exit(1)


def _save_traceback(text: str) -> str | None:
    """Write ``text`` where only this user reads it; the path, or None when nowhere could.

    ``<home>/logs/last-error.txt`` (written as a private temporary file, then renamed over
    that name: a symlink planted there is replaced, never followed); failing that, a new
    private file in the system's temporary folder (``mkstemp``: mode 0600, a fresh name,
    never a fixed path another user could have created first).
    """
    import tempfile

    logs = os.path.join(os.environ.get("PARALLELNER_HOME", ".parallelner"), "logs")
    for folder in (logs, None):
        try:
            if folder is not None:
                os.makedirs(folder, mode=0o700, exist_ok=True)
            fd, path = tempfile.mkstemp(prefix="parallelner-last-error-", suffix=".txt", dir=folder)
        except OSError:
            continue
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            if folder is None:
                return path
            final = os.path.join(folder, "last-error.txt")
            os.replace(path, final)
            return final
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)
    return None


def _is_usage_error(exc: BaseException) -> bool:
    """A click ``ClickException``, or Typer's own copy of one (not a click subclass)."""
    import click

    if isinstance(exc, click.ClickException):
        return True
    names = {c.__name__ for c in type(exc).__mro__}
    return "ClickException" in names and hasattr(exc, "show") and hasattr(exc, "exit_code")

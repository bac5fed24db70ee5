"""Shared CLI helpers: consoles, the settings options, JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from parallelner.settings import Settings, load_settings

console = Console()
console_err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="YAML settings file (below env vars and flags).", show_default=False
    ),
]
HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Data directory: catalog, warehouse, caches "
        "\\[env PARALLELNER_HOME, default ./.parallelner].",
        show_default=False,
    ),
]
LLMBaseURLOption = Annotated[
    str | None,
    typer.Option(
        "--llm-base-url",
        help="OpenAI-compatible base URL (vLLM, OpenAI...); several replicas of one model: "
        "comma-separated. Unset: the embedded local model \\[env PARALLELNER_LLM_BASE_URL].",
        show_default=False,
    ),
]
LLMModelOption = Annotated[
    str | None,
    typer.Option(
        "--llm-model", help="Model name \\[env PARALLELNER_LLM_MODEL].", show_default=False
    ),
]
MaxInFlightOption = Annotated[
    int | None,
    typer.Option(
        "--max-in-flight",
        help="LLM requests in flight for the whole process; on a Dask cluster, for each "
        "worker process \\[env PARALLELNER_LLM_MAX_IN_FLIGHT, default 64].",
        show_default=False,
        min=1,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def settings_from(config: Path | None = None, **flags: Any) -> Settings:
    """Effective settings for a command: defaults < YAML < env < the flags given."""
    return load_settings(config, **flags)


def print_json(data: Any) -> None:
    """Print JSON to stdout (no rich markup, stable key order)."""
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))

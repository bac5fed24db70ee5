"""`parallelner config show`: the effective settings, secrets masked."""

from __future__ import annotations

import typer
import yaml

from parallelner.cli._common import (
    ConfigOption,
    HomeOption,
    JsonOption,
    LLMBaseURLOption,
    LLMModelOption,
    MaxInFlightOption,
    print_json,
    settings_from,
)

config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@config_app.command("show")
def show(
    config: ConfigOption = None,
    home: HomeOption = None,
    llm_base_url: LLMBaseURLOption = None,
    llm_model: LLMModelOption = None,
    max_in_flight: MaxInFlightOption = None,
    json_: JsonOption = False,
) -> None:
    """Print the effective settings (defaults < --config YAML < PARALLELNER_* env < flags).

    Secrets (API keys, tokens) are shown as ***.
    """
    s = settings_from(
        config,
        home=home,
        llm_base_url=llm_base_url,
        llm_model=llm_model,
        llm_max_in_flight=max_in_flight,
    )
    data = s.masked()
    if json_:
        print_json(data)
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")

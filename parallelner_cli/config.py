"""`parallelner config show`: the effective settings, secrets masked."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
import yaml

from parallelner.settings import Settings, read_yaml_mapping
from parallelner_cli._common import (
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

EMBEDDED_LLM = "embedded local model"
_SECRETS = ("llm_api_key", "label_studio_api_key")
_SECTIONS = ("translate", "project", "quality")  # nested settings, shown one per line


def effective_settings(settings: Settings) -> dict[str, Any]:
    """The settings in effect as plain data: defaults resolved, secrets never shown.

    ``null`` in the settings means "derived": the SQLite catalog in ``<home>``, the
    warehouse under it, the embedded local model. This shows what each resolves to (the
    catalog URI with any password replaced); API keys and tokens print as ``***``.
    """
    from parallelner.store.catalog import (
        catalog_location,
        redact_catalog_uri,
        redact_location,
        warehouse_location,
    )

    data = settings.model_dump(mode="json")
    for key in _SECRETS:
        data[key] = "***" if getattr(settings, key) is not None else None
    data["home"] = str(Path(settings.home).absolute())
    data["catalog_uri"] = redact_catalog_uri(catalog_location(settings))
    data["warehouse"] = redact_location(warehouse_location(settings))
    from parallelner.storage import redact, storage_root

    data["storage_url"] = redact(storage_root(settings))
    if not isinstance(storage_root(settings), str):  # a folder: shown absolute, as home
        data["storage_url"] = str(Path(storage_root(settings)).absolute())
    data["llm_base_url"] = settings.llm_base_url or EMBEDDED_LLM
    data["llm_cache_url"] = _cache_shown(settings)
    return data


def _cache_shown(settings: Settings) -> str:
    """The reply cache in effect: the SQLite file, or the Postgres URL without its password."""
    from parallelner.llm.cache import CacheServer, cache_location
    from parallelner.llm.cache_pg import redact_cache_url

    where = cache_location(settings)
    if isinstance(where, CacheServer):
        return redact_cache_url(where.url)
    return str(where.absolute())


def setting_sources(config: Path | None, flags: dict[str, str]) -> dict[str, str]:
    """Where each setting given anywhere came from: ``flag``, ``env``, ``config``.

    ``flags`` maps the settings given on the command line to their flag names. Keys
    are dotted (``quality.min_chrf``); settings not listed are defaults (or derived).
    """
    out: dict[str, str] = {}
    if config is not None:
        for key, value in read_yaml_mapping(config).items():
            if isinstance(value, dict):
                out.update({f"{key}.{k}": f"config {config}" for k in value})
            else:
                out[key] = f"config {config}"
    prefix = "PARALLELNER_"
    for var in sorted(os.environ):
        if var.upper().startswith(prefix):
            key = var[len(prefix) :].lower().replace("__", ".")
            if key.split(".")[0] in Settings.model_fields:
                out[key] = f"env {var}"
    out.update({key: f"flag {flag}" for key, flag in flags.items()})
    return out


def _origin(key: str, sources: dict[str, str], settings: Settings) -> str:
    if key in sources:
        return sources[key]
    section = key.split(".")[0]
    if section in sources:  # a whole section as one env var (JSON)
        return sources[section]
    derived = {
        "catalog_uri": "default: SQLite <home>/catalog.db",
        "warehouse": "default: <home>/warehouse",
        "storage_url": "default: <home> (shards/, rows/)",
        "dask_address": "default: a local Dask cluster for --runner dask",
        "llm_base_url": "default: no base URL set",
        "llm_cache_url": "default: SQLite <home>/llm-cache.sqlite",
        "home": "default: ./.parallelner",
    }
    return derived.get(key, "default")


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def render(data: dict[str, Any], sources: dict[str, str], settings: Settings) -> str:
    """YAML of the effective settings, each line annotated with where it came from."""
    lines: list[str] = []
    rows: list[tuple[str, str | None]] = []
    for key, value in data.items():
        if key in _SECTIONS:
            rows.append((f"{key}:", None))
            for sub, v in value.items():
                rows.append((f"  {sub}: {_scalar(v)}", _origin(f"{key}.{sub}", sources, settings)))
        else:
            rows.append((f"{key}: {_scalar(value)}", _origin(key, sources, settings)))
    # align the comments, but not to the width of one long line (script_density)
    width = max((len(t) for t, o in rows if o is not None and len(t) <= 48), default=0)
    for text, origin in rows:
        lines.append(text if origin is None else f"{text.ljust(width)}  # {origin}")
    return "\n".join(lines)


@config_app.command("show")
def show(
    config: ConfigOption = None,
    home: HomeOption = None,
    llm_base_url: LLMBaseURLOption = None,
    llm_model: LLMModelOption = None,
    max_in_flight: MaxInFlightOption = None,
    json_: JsonOption = False,
) -> None:
    """Print the settings in effect and where each came from.

    Order: defaults < --config YAML < PARALLELNER_* env < flags. Derived values are
    shown resolved: the catalog (SQLite in the home unless PARALLELNER_CATALOG_URI), the
    warehouse, the LLM reply cache (SQLite in the home unless PARALLELNER_LLM_CACHE_URL
    names a Postgres server shared by several machines), and the embedded local model when
    no LLM base URL is set. Secrets (API keys, tokens, the catalog and cache passwords) are
    never printed.
    """
    given = {
        "home": ("--home", home),
        "llm_base_url": ("--llm-base-url", llm_base_url),
        "llm_model": ("--llm-model", llm_model),
        "llm_max_in_flight": ("--max-in-flight", max_in_flight),
    }
    s = settings_from(config, **{key: value for key, (_, value) in given.items()})
    flags = {key: flag for key, (flag, value) in given.items() if value is not None}
    sources = setting_sources(config, flags)
    data = effective_settings(s)
    if json_:
        print_json({**data, "sources": {k: _origin(k, sources, s) for k in _leaf_keys(data)}})
    else:
        typer.echo(render(data, sources, s))


def _leaf_keys(data: dict[str, Any]) -> list[str]:
    keys = []
    for key, value in data.items():
        if key in _SECTIONS:
            keys.extend(f"{key}.{sub}" for sub in value)
        else:
            keys.append(key)
    return keys


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")

"""The `release` flow: tag a snapshot with an immutable name and a release note."""

from __future__ import annotations

import json
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE as NO_CACHE

from parallelner.settings import load_settings


@task(name="create-tag", cache_policy=NO_CACHE)
def tag_task(name: str, snapshot: str | None, config: dict[str, Any] | None) -> dict[str, Any]:
    from parallelner.store.tags import create_tag

    return create_tag(name, snapshot, settings=load_settings(None, **(config or {})))


@flow(name="release")
def release(
    name: str, snapshot: str | None = None, config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Tag ``snapshot`` (default: the latest) as ``name``; tags are never moved or reused."""
    note = tag_task(name, snapshot, config)
    create_markdown_artifact(
        key="release-note",
        markdown=f"# Release `{name}`\n\n```json\n{json.dumps(note, indent=2, default=str)}\n```\n",
        description=f"release {name}",
    )
    return note

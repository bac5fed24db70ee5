"""The review flows: `review_push` sends the `review` pairs to Label Studio,
`review_pull` brings finished reviews back as a new snapshot.

Human review is two separate flows, never a paused one: annotators take days. A
Label Studio ``ANNOTATION_CREATED`` webhook (or a schedule) may trigger `review_pull`;
the export it reads is the source of truth. The API key comes from the settings
(``PARALLELNER_LABEL_STUDIO_API_KEY``) or from a Prefect ``Secret`` block named by
``api_key_secret``; it never appears in parameters, logs or artifacts.
"""

from __future__ import annotations

import json
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE as NO_CACHE

from parallelner.settings import Settings, load_settings

__all__ = ["review_push", "review_pull"]


def _settings(config: dict[str, Any] | None, api_key_secret: str | None) -> Settings:
    overrides = dict(config or {})
    if api_key_secret:
        from prefect.blocks.system import Secret

        overrides["label_studio_api_key"] = Secret.load(api_key_secret).get()
    return load_settings(None, **overrides)


@task(name="push-review-tasks", cache_policy=NO_CACHE)
def push_task(settings: Settings, snapshot: str) -> dict[str, Any]:
    from annotation.push import push_snapshot

    return push_snapshot(settings, snapshot)


@task(name="pull-reviews", cache_policy=NO_CACHE)
def pull_task(settings: Settings, snapshot: str) -> dict[str, Any]:
    from annotation.pull import pull_snapshot

    return pull_snapshot(settings, snapshot)


def _artifact(key: str, title: str, report: dict[str, Any]) -> None:
    body = json.dumps(report, indent=2, ensure_ascii=False, default=str)
    create_markdown_artifact(key=key, markdown=f"# {title}\n\n```json\n{body}\n```\n",
                             description=title)  # fmt: skip


@flow(name="review-push")
def review_push(snapshot: str = "main", config: dict[str, Any] | None = None,
                api_key_secret: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Import the `review` rows of ``snapshot`` into the Label Studio project (idempotent)."""
    report = push_task(_settings(config, api_key_secret), snapshot)
    _artifact("review-push", "Review push", report)
    return report


@flow(name="review-pull")
def review_pull(snapshot: str = "main", config: dict[str, Any] | None = None,
                api_key_secret: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Apply finished reviews to ``snapshot``; commit a new snapshot when anything changed."""
    report = pull_task(_settings(config, api_key_secret), snapshot)
    _artifact("review-pull", "Review pull", report)
    return report

"""Deployments of every flow, for `parallelner serve` and for work-pool workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# name -> (entrypoint, description, default parameters)
FLOWS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "synthesize": (
        "flows/synthesize.py:synthesize",
        "Translate, project and filter NER sources into one dataset snapshot.",
        {},
    ),
    "review-push": (
        "flows/review.py:review_push",
        "Send the pairs in `review` to Label Studio.",
        {},
    ),
    "review-pull": (
        "flows/review.py:review_pull",
        "Bring finished Label Studio reviews back as a new snapshot.",
        {},
    ),
    "release": (
        "flows/release.py:release",
        "Tag a snapshot with an immutable name and a release note.",
        {},
    ),
}


def _load(entrypoint: str):
    from prefect.flows import load_flow_from_entrypoint

    return load_flow_from_entrypoint(str(REPO / entrypoint))


def available() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """The deployable flows whose module exists in this checkout."""
    return {k: v for k, v in FLOWS.items() if (REPO / v[0].split(":")[0]).is_file()}


def serve_all(names: list[str] | None = None, limit: int | None = None) -> None:
    """Serve the flows in this process: runs triggered from the UI/API execute here."""
    from prefect import serve

    chosen = available()
    if names:
        unknown = set(names) - set(chosen)
        if unknown:
            from parallelner.errors import ConfigError

            raise ConfigError(f"unknown flow(s) {sorted(unknown)}: choose from {sorted(chosen)}")
        chosen = {k: chosen[k] for k in names}
    deployments = [
        _load(ep).to_deployment(name=name, description=desc, parameters=params or None)
        for name, (ep, desc, params) in chosen.items()
    ]
    serve(*deployments, limit=limit)


def deploy_all(work_pool: str, names: list[str] | None = None) -> list[str]:
    """Register deployments that a worker of ``work_pool`` runs from this source tree."""
    from prefect import flow

    ids = []
    for name, (ep, desc, params) in available().items():
        if names and name not in names:
            continue
        f = flow.from_source(source=str(REPO), entrypoint=ep)
        dep_id = f.deploy(
            name=name,
            work_pool_name=work_pool,
            description=desc,
            parameters=params or None,
            build=False,
            push=False,
            print_next_steps=False,
            ignore_warnings=True,
        )
        ids.append(str(dep_id))
    return ids

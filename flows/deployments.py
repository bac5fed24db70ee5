"""Deployments of every flow, for `parallelner serve` and for work-pool workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parallelner.errors import ConfigError

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


def _choose(names: list[str] | None) -> dict[str, tuple[str, str, dict[str, Any]]]:
    chosen = available()
    if names:
        unknown = set(names) - set(chosen)
        if unknown:
            raise ConfigError(f"unknown flow(s) {sorted(unknown)}: choose from {sorted(chosen)}")
        chosen = {k: chosen[k] for k in names}
    return chosen


def pool_deployment_name(name: str, work_pool: str) -> str:
    """The name ``deploy`` registers ``name`` under for ``work_pool``.

    Served and pool deployments never share a name: ``serve`` re-registering
    ``synthesize/synthesize`` without the pool's pull step left a deployment that every
    run crashed on ("Downloading flow code from storage at None").
    """
    return f"{name}-{work_pool}"


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise ConfigError(
            "deployments live on a Prefect server: set PREFECT_API_URL (e.g. "
            "http://127.0.0.1:4200/api after `prefect server start`)"
        )
    return str(url)


def _served_names_free(deployments: list[Any]) -> None:
    """Refuse to serve a deployment name that a work pool's deployment holds."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for dep in deployments:
            full = f"{dep.flow_name}/{dep.name}"
            try:
                existing = client.read_deployment_by_name(full)
            except ObjectNotFound:
                continue
            if existing.work_pool_name:
                raise ConfigError(
                    f"deployment {full} belongs to work pool {existing.work_pool_name!r} "
                    "(an older `parallelner deploy`); serving it here would break it: "
                    f"`prefect deployment delete '{full}'`, then serve again"
                )


def serve_all(names: list[str] | None = None, limit: int | None = None) -> None:
    """Serve the flows in this process: runs triggered from the UI/API execute here."""
    from prefect import serve

    chosen = _choose(names)
    deployments = [
        _load(ep).to_deployment(name=name, description=desc, parameters=params or None)
        for name, (ep, desc, params) in chosen.items()
    ]
    _guard_prefect(_api_url)
    _guard_prefect(lambda: _served_names_free(deployments))
    serve(*deployments, limit=limit)


def _check_pool(work_pool: str, api: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(work_pool)
        except ObjectNotFound:
            raise ConfigError(
                f"no work pool {work_pool!r} on the Prefect server at {api}: create it with "
                f"`prefect work-pool create {work_pool} --type process`, then deploy again"
            ) from None


def _guard_prefect(call: Any) -> Any:
    """Run ``call``; a Prefect server that cannot be reached is one line, not a traceback."""
    import httpx

    try:
        return call()
    except httpx.TransportError as exc:
        raise ConfigError(
            f"cannot reach the Prefect server at {_api_url()} ({type(exc).__name__}): "
            "is `prefect server start` running, and PREFECT_API_URL right?"
        ) from None


def deploy_all(work_pool: str, names: list[str] | None = None) -> list[tuple[str, str]]:
    """Register deployments that a worker of ``work_pool`` runs from this source tree.

    Returns (deployment name as ``flow/name``, id) for each. The work pool must exist.
    """
    from prefect import flow

    chosen = _choose(names)
    api = _guard_prefect(_api_url)
    _guard_prefect(lambda: _check_pool(work_pool, api))
    out = []
    for name, (ep, desc, params) in chosen.items():
        f = flow.from_source(source=str(REPO), entrypoint=ep)
        dep_name = pool_deployment_name(name, work_pool)
        dep_id = f.deploy(
            name=dep_name,
            work_pool_name=work_pool,
            description=desc,
            parameters=params or None,
            build=False,
            push=False,
            print_next_steps=False,
            ignore_warnings=True,
        )
        out.append((f"{f.name}/{dep_name}", str(dep_id)))
    return out

"""`parallelner serve` / `parallelner deploy`: make the flows runnable from Prefect."""

from __future__ import annotations

from typing import Annotated

import typer

from parallelner_cli._common import console


def serve(
    flows: Annotated[
        list[str] | None,
        typer.Argument(
            help="Flows to serve (default: all): synthesize, review-push, review-pull, release.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Maximum concurrent flow runs.")] = None,
) -> None:
    """Serve the deployable flows from this process until interrupted.

    Connects to the Prefect server at PREFECT_API_URL; start runs from its UI, from
    `prefect deployment run 'synthesize/synthesize'`, or on a schedule. Runs execute in
    this process, with its environment and working directory.
    """
    from flows.deployments import serve_all

    serve_all(flows or None, limit=limit)


def deploy(
    work_pool: Annotated[str, typer.Option("--pool", help="Work pool whose workers run them.")],
    flows: Annotated[
        list[str] | None, typer.Argument(help="Flows to deploy (default: all).", show_default=False)
    ] = None,
) -> None:
    """Register deployments for a work pool (run them with `prefect worker start --pool`).

    Each flow is registered as FLOW/FLOW-POOL (e.g. synthesize/synthesize-POOL), apart
    from the names `parallelner serve` uses. The pool must exist (`prefect work-pool
    create POOL --type process`). A worker reads PARALLELNER_HOME and PARALLELNER_LLM_*
    from its own environment; relative paths in a run's parameters resolve against the
    source tree (the worker's working directory).
    """
    from flows.deployments import deploy_all

    for full_name, dep_id in deploy_all(work_pool, flows or None):
        console.print(f"deployment {dep_id}  {full_name}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("deploy")(deploy)

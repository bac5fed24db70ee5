"""docker-compose.yml is well-formed and consistent with the code's settings.

No Docker engine runs here, so the file is checked as data: every PARALLELNER_* variable
it sets is a real setting, every required ${VAR} is in .env.example, and the services
point at each other by the names and ports they expose.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from parallelner.settings import Settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _env_names() -> set[str]:
    """Environment variable names that Settings reads (flat and nested)."""
    prefix = Settings.model_config["env_prefix"]
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(f"{prefix}{name}".upper())
        ann = field.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            for sub in ann.model_fields:
                names.add(f"{prefix}{name}__{sub}".upper())
    return names


def test_every_service_has_an_image_or_build(compose):
    expected = {"postgres", "prefect-server", "prefect-worker", "vllm", "label-studio", "minio",
                "dask-scheduler", "dask-worker"}  # fmt: skip
    assert expected <= set(compose["services"])
    for name, svc in compose["services"].items():
        assert "image" in svc or "build" in svc, name


def test_parallelner_env_vars_are_real_settings(compose):
    known = _env_names()
    used = set()
    for svc in compose["services"].values():
        for key in svc.get("environment") or {}:
            if key.startswith("PARALLELNER_"):
                used.add(key)
    assert used, "the worker must be configured through PARALLELNER_* variables"
    assert used <= known, f"not settings: {sorted(used - known)}"


def test_contract_names_from_the_design_are_settings():
    for name in (
        "PARALLELNER_LLM_BASE_URL",
        "PARALLELNER_LLM_API_KEY",
        "PARALLELNER_LLM_MODEL",
        "PARALLELNER_LLM_MAX_IN_FLIGHT",
        "PARALLELNER_HOME",
        "PARALLELNER_LABEL_STUDIO_URL",
        "PARALLELNER_LABEL_STUDIO_API_KEY",
    ):
        assert name in _env_names(), name


def test_required_variables_are_in_env_example():
    text = (REPO / "docker-compose.yml").read_text()
    example = {
        line.split("=", 1)[0]
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    assert referenced <= example, f"missing from .env.example: {sorted(referenced - example)}"


def test_services_reference_each_other_by_name_and_port(compose):
    services = compose["services"]
    env = services["prefect-worker"]["environment"]
    assert env["PREFECT_API_URL"].startswith("http://prefect-server:4200")
    assert "4200:4200" in services["prefect-server"]["ports"]
    assert env["PARALLELNER_LLM_BASE_URL"] == "http://vllm:8000/v1"
    assert "--port 8000" in services["vllm"]["command"]
    assert env["PARALLELNER_LABEL_STUDIO_URL"] == "http://label-studio:8080"
    assert "8080:8080" in services["label-studio"]["ports"]
    assert "@postgres:5432/" in env["PARALLELNER_CATALOG_URI"]
    db = services["postgres"]["environment"]["POSTGRES_DB"]  # made by the image itself
    assert env["PARALLELNER_LLM_CACHE_URL"].endswith(f"@postgres:5432/{db}")
    assert (
        "@postgres:5432/prefect"
        in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    )
    assert services["label-studio"]["environment"]["POSTGRE_HOST"] == "postgres"
    init = (REPO / "docker" / "postgres-init.sql").read_text()
    for db in ("prefect", "iceberg", "labelstudio"):
        assert f"CREATE DATABASE {db};" in init


def test_no_secret_values_in_compose_file(compose):
    secretish = re.compile(r"(PASSWORD|SECRET|API_KEY|TOKEN)")
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if secretish.search(key) and not key.endswith("_ENABLE_LEGACY_API_TOKEN"):
                assert str(value).startswith("${"), f"{name}: literal secret in {key}"


def test_dask_workers_reach_the_scheduler_storage_and_prefect(compose):
    services = compose["services"]
    scheduler, worker = services["dask-scheduler"], services["dask-worker"]
    # the image of the app: the dask CLI and the package (``.[dask]``: prefect-dask, s3fs)
    assert scheduler["build"] == worker["build"] == services["prefect-worker"]["build"]
    assert "[dask]" in (REPO / "Dockerfile").read_text()
    assert "--port 8786" in scheduler["command"] and "8786:8786" in scheduler["ports"]
    env = worker["environment"]
    address = env["PARALLELNER_DASK_ADDRESS"]
    assert address == "tcp://dask-scheduler:8786" and address in worker["command"]
    assert services["prefect-worker"]["environment"]["PARALLELNER_DASK_ADDRESS"] == address
    # shards and rows in the MinIO bucket of the warehouse, with the warehouse's credentials
    warehouse_bucket = env["PARALLELNER_WAREHOUSE"].removeprefix("s3://").split("/")[0]
    assert env["PARALLELNER_STORAGE_URL"].startswith(f"s3://{warehouse_bucket}/")
    assert env["AWS_ENDPOINT_URL"] == "http://minio:9000" and "AWS_SECRET_ACCESS_KEY" in env
    # task runs reported to the team's Prefect server; a home of its own for local files
    assert env["PREFECT_API_URL"].startswith("http://prefect-server:4200")
    assert env["PARALLELNER_HOME"] != services["prefect-worker"]["environment"]["PARALLELNER_HOME"]

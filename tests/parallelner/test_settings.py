"""Settings: precedence defaults < YAML < env < flags, secrets masked, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from parallelner.errors import ConfigError
from parallelner.settings import load_settings


def test_precedence_yaml_env_flags(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("llm_model: from-yaml\nllm_max_in_flight: 8\nquality:\n  min_chrf: 11\n")
    assert load_settings(cfg).llm_model == "from-yaml"
    monkeypatch.setenv("PARALLELNER_LLM_MODEL", "from-env")
    monkeypatch.setenv("PARALLELNER_QUALITY__MIN_CHRF", "12")
    s = load_settings(cfg)
    assert (s.llm_model, s.llm_max_in_flight, s.quality.min_chrf) == ("from-env", 8, 12)
    assert load_settings(cfg, llm_model="from-flag").llm_model == "from-flag"


def test_bad_yaml_names_file_and_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("llm_model: a\n  bad: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: not valid YAML"):
        load_settings(cfg)


def test_unknown_setting_and_wrong_type_are_one_clear_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("llm_modle: x\n")
    with pytest.raises(ConfigError, match="llm_modle"):
        load_settings(cfg)
    with pytest.raises(ConfigError, match="llm_max_in_flight"):
        load_settings(None, llm_max_in_flight=0)


def test_stage_hash_ignores_concurrency_and_secrets(monkeypatch):
    a = load_settings(None, llm_max_in_flight=4, workers=1)
    monkeypatch.setenv("PARALLELNER_LLM_API_KEY", "sk-secret-123")
    b = load_settings(None, llm_max_in_flight=256, workers=8)
    assert a.stage_hash("translate") == b.stage_hash("translate")
    assert a.stage_hash("translate") != load_settings(None, llm_model="other").stage_hash(
        "translate"
    )


def test_config_show_masks_secrets(tmp_path):
    env = {
        "PARALLELNER_LLM_API_KEY": "sk-very-secret-42",
        "PARALLELNER_LABEL_STUDIO_API_KEY": "ls-token-777",
        "PARALLELNER_CATALOG_URI": "postgresql://u:pw-999@h/db",
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-m", "parallelner_cli", "config", "show", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "sk-very-secret-42" not in out.stdout + out.stderr
    assert "ls-token-777" not in out.stdout + out.stderr
    assert "pw-999" not in out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["llm_api_key"] == "***"
    assert data["label_studio_api_key"] == "***"


def test_reasons_command_documents_every_code():
    from parallelner.reasons import Reason
    from parallelner_cli.reasons import reason_table

    rows = reason_table()
    assert {r["code"] for r in rows} == {r.value for r in Reason}
    assert all(r["stage"] for r in rows)


def _config_show(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "parallelner_cli", "config", "show", *args],
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "80", **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )


def test_config_show_prints_the_values_in_effect_not_null(tmp_path):
    """Catalog, warehouse and LLM show what they resolve to, and where each came from."""
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])  # this tree, not another checkout
    pythonpath = {"PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
    data = json.loads(_config_show(tmp_path, "--json", **pythonpath).stdout)
    home = tmp_path / ".parallelner"
    assert data["home"] == str(home)
    assert data["catalog_uri"] == f"sqlite:///{home / 'catalog.db'}"
    assert data["warehouse"] == (home / "warehouse").as_uri()
    assert data["llm_base_url"] == "embedded local model"
    assert data["sources"]["home"].startswith("default")
    assert data["storage_url"] == str(home) and data["dask_address"] is None

    other = tmp_path / "h2"
    env = {
        **pythonpath,
        "PARALLELNER_CATALOG_URI": "postgresql://u:pw-999@db.example/cat",
        "PARALLELNER_WAREHOUSE": "s3://KEY:SECRET-5@bucket/wh",
        "PARALLELNER_LLM_BASE_URL": "http://127.0.0.1:8000/v1",
        "PARALLELNER_QUALITY__MIN_CHRF": "30",
        "PARALLELNER_STORAGE_URL": "s3://KEY:SECRET-6@bucket/runs",
        "PARALLELNER_DASK_ADDRESS": "tcp://10.0.0.5:8786",
    }
    out = _config_show(tmp_path, "--home", str(other), **env).stdout
    assert "pw-999" not in out and "SECRET-5" not in out and "SECRET-6" not in out
    lines = {line.split(":")[0].strip(): line for line in out.splitlines()}
    assert "postgresql://u:***@db.example/cat" in lines["catalog_uri"]
    assert "env PARALLELNER_CATALOG_URI" in lines["catalog_uri"]
    assert "s3://***@bucket/wh" in lines["warehouse"]
    assert "s3://***@bucket/runs" in lines["storage_url"]
    assert "tcp://10.0.0.5:8786" in lines["dask_address"]
    assert "http://127.0.0.1:8000/v1" in lines["llm_base_url"]
    assert f"{other}" in lines["home"] and "flag --home" in lines["home"]
    assert "30.0" in lines["min_chrf"] and "env PARALLELNER_QUALITY__MIN_CHRF" in lines["min_chrf"]

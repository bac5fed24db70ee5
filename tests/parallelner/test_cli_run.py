"""`parallelner run` keeps secrets out of what it shows and out of the Prefect flow run's
parameters (the API stores them in clear, the UI shows them): a password in a catalog
or reply-cache URL of the YAML file, or in the user info of ``--llm-base-url``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from parallelner.settings import load_settings
from parallelner.testing.openai_server import OpenAIServer

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "parallelner")
SAMPLE = REPO / "examples" / "wikineural-en-sample.conllu"
PASSWORDS = ("catpw-5e1d9", "cachepw-77ab2", "llmpw-c3f08")


@pytest.fixture
def clean_env(monkeypatch):
    """No PARALLELNER_ setting from outside; what the command sets is undone after."""
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("PARALLELNER_")]:
        monkeypatch.delenv(key)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_flow_parameters_hold_no_password(tmp_path, monkeypatch, clean_env):
    import flows.server
    import flows.synthesize
    from parallelner_cli import app

    config = tmp_path / "settings.yaml"
    config.write_text(
        f"catalog_uri: postgresql+psycopg2://ds:{PASSWORDS[0]}@127.0.0.1:9/catalog\n"
        f"llm_cache_url: postgresql://ds:{PASSWORDS[1]}@127.0.0.1:9/cache\n"
        "llm_model: test-model\n"
    )
    called: dict = {}

    class Recorder:  # the flow as the CLI calls it: what would become its parameters
        def with_options(self, **_):
            return self

        def __call__(self, **parameters):
            called.update(parameters)
            config_file = parameters.get("config_file")
            called["settings"] = load_settings(
                Path(config_file) if config_file else None, **parameters["config"]
            )  # what the flow builds from them (and the environment)
            return {"run_id": "run-x", "counts": {}, "reasons": {}, "read_counts": {},
                    "usage": {}, "acceptance_rate": 0.0, "snapshot_id": None,
                    "report_dir": ""}  # fmt: skip

    monkeypatch.setattr(flows.synthesize, "synthesize", Recorder())
    monkeypatch.setattr(flows.server, "start_local_api", lambda: None)
    with OpenAIServer(model="test-model") as srv:
        url = srv.base_url.replace("http://", f"http://user:{PASSWORDS[2]}@")
        res = CliRunner().invoke(
            app,
            ["run", str(SAMPLE), "--to", "zh", "--config", str(config), "--llm-base-url", url,
             "--home", str(tmp_path / "home"), "--json"],
        )  # fmt: skip
    assert res.exit_code == 0, res.output
    settings = called.pop("settings")
    stored = json.dumps(called)
    assert not [p for p in PASSWORDS if p in stored], stored
    assert not [p for p in PASSWORDS if p in res.output]
    # the flow still gets every secret, from the YAML file and the environment
    assert settings.catalog_uri.get_secret_value().endswith(f"{PASSWORDS[0]}@127.0.0.1:9/catalog")
    assert PASSWORDS[1] in settings.llm_cache_url.get_secret_value()
    assert settings.llm_base_url == url


def test_the_unreachable_line_never_shows_the_password(tmp_path):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARALLELNER_")}
    res = subprocess.run(
        [CLI, "run", str(SAMPLE), "--to", "zh", "--home", str(tmp_path / "home"),
         "--llm-base-url", f"http://user:{PASSWORDS[2]}@127.0.0.1:{port}/v1"],
        capture_output=True, text=True, timeout=120, env=env, cwd=REPO,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "cannot reach the LLM endpoint" in res.stderr
    assert PASSWORDS[2] not in res.stdout + res.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw-1@host:8080/v1", "http://***@host:8080/v1"),
        ("postgresql://u:p@ss,w@db/x", "postgresql://***@db/x"),  # '@' and ',' in it
        ("http://a:pw-2@h1/v1,http://b:pw-3@h2/v1", "http://***@h1/v1,http://***@h2/v1"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("/a/local/path", "/a/local/path"),
    ],
)
def test_redact_url_masks_user_info(url, shown):
    from parallelner.redaction import redact_url

    assert redact_url(url) == shown


def test_settings_masked_masks_user_info_of_every_url():
    s = load_settings(
        None, llm_base_url="http://u:pw-4@127.0.0.1:1/v1", label_studio_url="http://u:pw-5@ls:8080",
        storage_url="s3://KEY:pw-6@bucket/x",
    )  # fmt: skip
    shown = json.dumps(s.masked())
    assert not [p for p in ("pw-4", "pw-5", "pw-6") if p in shown]

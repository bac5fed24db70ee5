"""A real Label Studio server on loopback for the annotation tests, and review records.

The server runs from its own virtualenv (``.services/label-studio-venv``, made by
``make services``): Label Studio pins its own openai/numpy/pandas and never goes into
the project's environment. Each test session gets a fresh SQLite database in a
temporary directory (copied from the migrated template that ``make services`` prepares,
when present: first-boot migrations take minutes), a known user and a legacy token
enabled at first boot.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from parallelner.reasons import Reason, Status
from parallelner.records import Entity, ParallelRecord, ProjectedEntity

REPO = Path(__file__).resolve().parents[2]
LS_VENV = REPO / ".services" / "label-studio-venv"
LS_BIN = LS_VENV / "bin" / "label-studio"
LS_TEMPLATE = REPO / ".services" / "label-studio-template" / "label_studio.sqlite3"
BOOT_TIMEOUT_S = 900  # first boot without the template runs every migration

USER = "reviewer@parallelner.test"
PASSWORD = "review-pass-4242"
TOKEN = "5f0c2d8e9b7a4c31a6e0d2b4c8f1e3a57d9b0c12"


@dataclass(frozen=True)
class LabelStudioServer:
    url: str
    token: str
    user: str
    password: str
    data_dir: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as resp:
            return json.loads(resp.read()).get("status") == "UP"
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    """Start Label Studio on a free loopback port; stop it after the session."""
    if not LS_BIN.exists():
        pytest.fail(
            f"Label Studio is not installed ({LS_BIN} missing): run `make services` "
            "(scripts/install-services.sh) first",
            pytrace=False,
        )
    data_dir = tmp_path_factory.mktemp("label-studio")
    if LS_TEMPLATE.exists():
        shutil.copy(LS_TEMPLATE, data_dir / "label_studio.sqlite3")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "LABEL_STUDIO"))},
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_USERNAME": USER,
        "LABEL_STUDIO_PASSWORD": PASSWORD,
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LABEL_STUDIO_HOST": url,
    }
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(LS_BIN),
            "start",
            "--no-browser",
            "--internal-host",
            "127.0.0.1",
            "--port",
            str(port),
            "--enable-legacy-api-token",
        ],  # fmt: skip
        cwd=data_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None:
                tail = (data_dir / "server.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"Label Studio exited with {proc.returncode}:\n{tail}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"Label Studio not healthy after {BOOT_TIMEOUT_S}s", pytrace=False)
            time.sleep(1)
        yield LabelStudioServer(url, TOKEN, USER, PASSWORD, data_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _pud_records() -> list[ParallelRecord]:
    """ParallelRecords in review built from real en->zh pairs (data/projection-dev)."""
    out = []
    path = REPO / "data" / "projection-dev" / "pud-en-zh.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        src, tgt = row["source"], row["target"]
        src_entities = tuple(Entity(**e) for e in src["entities"])
        gold = sorted(row["gold"], key=lambda e: e["start"])
        if not gold or len(gold) != len(src_entities):
            continue
        tgt_entities = tuple(
            ProjectedEntity(**g, source_index=i, method="exact", score=0.9)
            for i, g in enumerate(gold)
        )
        out.append(
            ParallelRecord(
                record_id=f"rec-{row['id']}",
                instance_id=src["id"],
                run_id="run-test",
                source_dataset="wikineural",
                src_lang=src["lang"],
                tgt_lang=tgt["lang"],
                src_text=src["text"],
                src_entities=src_entities,
                tgt_text=tgt["text"],
                tgt_entities=tgt_entities,
                status=Status.REVIEW,
                reasons=(Reason.BORDERLINE_BACKTRANSLATION,),
                pipeline_version="0.1.0",
                prompt_version="translate.v1",
                model="gemma-3-270m",
                config_hash="cafe0123",
            )
        )
    return out


def with_prefix(record: ParallelRecord, prefix: str) -> ParallelRecord:
    """The same record with ``prefix`` (e.g. an emoji) put before the target text."""
    n = len(prefix)
    return record.model_copy(
        update={
            "record_id": record.record_id + "-emoji",
            "tgt_text": prefix + (record.tgt_text or ""),
            "tgt_entities": tuple(
                e.model_copy(update={"start": e.start + n, "end": e.end + n})
                for e in record.tgt_entities
            ),
        }
    )


@pytest.fixture(scope="session")
def pud_records() -> list[ParallelRecord]:
    return _pud_records()

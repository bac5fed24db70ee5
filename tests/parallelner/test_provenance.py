"""Readable provenance: the run signature and the config hash derived from it."""

from __future__ import annotations

import re
from pathlib import Path

from parallelner.reasons import Status
from parallelner.records import ParallelRecord
from parallelner.settings import load_settings
from parallelner.version import PIPELINE_VERSION, run_signature, signature_hash, stage_config_hash

PACKAGE = Path(__file__).resolve().parents[2] / "parallelner"


def test_signature_spells_out_the_settings_people_compare(tmp_path):
    settings = load_settings(None, home=tmp_path, llm_model="qwen2.5-7b")
    sig = run_signature(settings, "zh")
    parts = dict(p.split(":", 1) for p in sig.split("|"))
    assert parts["model"] == "qwen2.5-7b" and parts["prompt"] == "translate.v1"
    assert parts["tgt"] == "zh" and parts["fuzzy"] == "0.8" and parts["min_chrf"] == "25"
    assert parts["v"] == PIPELINE_VERSION and re.fullmatch(r"[0-9a-f]{8}", parts["stages"])


def test_config_hash_is_the_hash_of_the_signature(tmp_path):
    settings = load_settings(None, home=tmp_path)
    sig = run_signature(settings, "zh")
    assert stage_config_hash(settings, "zh") == signature_hash(sig)
    assert re.fullmatch(r"[0-9a-f]{16}", signature_hash(sig))


def test_signature_follows_row_settings_and_ignores_concurrency(tmp_path):
    base = load_settings(None, home=tmp_path)
    sig = run_signature(base, "zh")
    assert (
        run_signature(base.model_copy(update={"llm_max_in_flight": 3, "workers": 9}), "zh") == sig
    )
    changed = load_settings(None, home=tmp_path, quality={"min_chrf": 30})
    assert "min_chrf:30" in run_signature(changed, "zh")
    hidden = load_settings(None, home=tmp_path, translate={"temperature": 0.5})
    assert run_signature(hidden, "zh") != sig  # not spelled out, but in the stages hash
    assert run_signature(base, "de") != sig


def test_records_carry_the_signature_and_older_rows_have_none():
    fields = dict(
        record_id="r", instance_id="i", run_id="t", src_lang="en", tgt_lang="zh",
        src_text="x", status=Status.REVIEW, pipeline_version="0", prompt_version="p",
        model="m", config_hash="c",
    )  # fmt: skip
    assert ParallelRecord(**fields).signature is None
    rec = ParallelRecord(**fields, signature="model:m|v:0")
    assert ParallelRecord.model_validate_json(rec.model_dump_json()).signature == "model:m|v:0"


def test_no_stage_module_knows_which_backend_answers():
    stage_modules = [
        *(PACKAGE / "stages").glob("*.py"),
        PACKAGE / "pipeline.py",
        *(PACKAGE / "align").glob("*.py"),
        *(PACKAGE / "quality").glob("*.py"),
    ]
    for path in stage_modules:
        text = path.read_text(encoding="utf-8")
        assert "is_local" not in text, path
        assert ".complete(" not in text and ".chat_json(" not in text, path

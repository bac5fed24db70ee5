"""`parallelner train ...` end to end FROM A SNAPSHOT TAG, and its one-line errors.

commit records to the store -> tag -> build -> tiny model -> train (CPU) -> eval, each
step through the CLI as the README shows it. Records come from real gold pairs; a quarter
of them are rejected in the snapshot and must not reach the instruction data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from parallelner.reasons import Status
from parallelner.settings import load_settings
from parallelner.testing.samples import records_from_projection_gold
from tests.training.conftest import PUD

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def cli(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PARALLELNER_HOME": str(home)}
    exe = Path(sys.executable).parent / "parallelner"  # the console script of this venv
    return subprocess.run(
        [str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def tagged_home(tmp_path_factory) -> Path:
    """A store with two commits of real pairs and the tag `pud-v1` on the first."""
    from parallelner import store

    home = tmp_path_factory.mktemp("home")
    settings = load_settings(home=home)
    records = records_from_projection_gold(PUD, limit=40, run_id="run1")
    records = [
        r.model_copy(update={"status": Status.REJECTED}) if i % 4 == 3 else r
        for i, r in enumerate(records)
    ]
    store.commit(records, "run1", settings=settings)
    store.create_tag("pud-v1", settings=settings)
    later = records_from_projection_gold(PUD, limit=60, run_id="run2")[40:]
    store.commit(later, "run2", settings=settings)  # after the tag: must not be built
    return home


def test_build_train_eval_from_a_snapshot_tag(tagged_home, tmp_path):
    data = tmp_path / "data"
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "build: {dev_ratio: 0.3, negatives: 2, max_classes: 4}\n"
        "model: {base_model: ./tiny, device: cpu, max_seq_length: 1024, overlong: truncate}\n"
        "lora: {r: 8, alpha: 16}\n"
        "train: {output_dir: run, max_steps: 12, per_device_batch_size: 4, "
        "gradient_accumulation: 1, learning_rate: 1.0e-2, warmup: 0, logging_steps: 4, "
        "save_steps: 6, gradient_checkpointing: false}\n"
        "eval: {backend: transformers, max_new_tokens: 24, batch_size: 8}\n"
    )
    res = cli(
        "train",
        "build",
        "--snapshot",
        "pud-v1",
        "-c",
        str(config),
        "-o",
        str(data),
        "--json",
        home=tagged_home,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    manifest = json.loads(res.stdout)
    assert manifest["snapshot"] == "pud-v1"
    assert manifest["records"]["used"] == 30  # 40 in the tag, 10 rejected, run2 not tagged
    ids = {
        json.loads(line)["record_id"]
        for f in ("train.jsonl", "dev.jsonl")
        for line in (data / f).read_text().splitlines()
    }
    assert len(ids) == 30 and all(i.startswith("run1-") for i in ids)
    assert manifest["instances"]["dev"] > 0

    res = cli(
        "train",
        "tiny-model",
        "--data",
        str(data),
        "-o",
        str(tmp_path / "tiny"),
        "--vocab-size",
        "1200",
        home=tagged_home,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr

    res = cli(
        "train",
        "run",
        "-c",
        str(config),
        "--data",
        str(data),
        "--json",
        home=tagged_home,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["snapshot"] == "pud-v1" and report["global_step"] == 12
    assert report["losses"][-1] < report["losses"][0]
    adapter = tmp_path / "run" / "adapter"
    assert (adapter / "adapter_config.json").exists()

    # the same command again: the steps are done, none is taken, and it says so
    res = cli(
        "train", "run", "-c", str(config), "--data", str(data), home=tagged_home, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert "steps 12  train loss n/a" in res.stdout
    assert "nothing to train" in " ".join(res.stderr.split())

    res = cli(
        "train",
        "eval",
        "-c",
        str(config),
        "--adapter",
        str(adapter),
        "--data",
        str(data),
        "--limit",
        "8",
        "-o",
        str(tmp_path / "eval"),
        "--json",
        home=tagged_home,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    scores = json.loads(res.stdout)
    assert scores["overall"]["examples"] == 8
    assert (tmp_path / "eval" / "eval_report.json").exists()


def test_eval_on_a_span_jsonl_file(tmp_path, tiny_model):
    spans = tmp_path / "sample.jsonl"
    rows = [json.loads(line)["source"] for line in PUD.read_text().splitlines()[:3]]
    spans.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    config = tmp_path / "c.yaml"
    config.write_text(
        f"model: {{base_model: {tiny_model}, device: cpu, max_seq_length: 1024}}\n"
        "eval: {backend: transformers, max_new_tokens: 8}\n"
    )
    res = cli(
        "train",
        "eval",
        "-c",
        str(config),
        "--input",
        str(spans),
        "--dataset",
        "wikineural",
        "--json",
        home=tmp_path,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["overall"]["examples"] == 3
    assert report["overall"]["tp"] + report["overall"]["fn"] == sum(
        len(r["entities"]) for r in rows
    )
    assert report["counts"]["sentences_read"] == 3


def test_eval_files_of_other_formats_use_their_own_label_maps(tmp_path, tiny_model):
    from training.evaluate import examples_from_file

    wiki, counts = examples_from_file(EXAMPLES / "wikineural-en-sample.conllu")
    assert len(wiki) == 20 and counts["sentences_read"] == 20
    assert wiki[0].dataset == "wikineural" and "Location" in wiki[0].classes
    assert ("Location", "Tuvalu") in wiki[0].gold  # "Her visit to Tuvalu ..."
    zh, _ = examples_from_file(EXAMPLES / "cluener-zh-sample.jsonl")
    assert zh[0].dataset == "cluener" and zh[0].lang == "zh"
    assert set(zh[0].gold) == {("Address", "台湾"), ("Person", "彭小军")}
    assert {"Address", "Game", "GovernmentAgency", "Scene"} <= set(zh[0].classes)


def test_eval_file_lines_with_labels_outside_the_map_are_quarantined_and_counted(tmp_path):
    from training.errors import TrainingDataError
    from training.evaluate import examples_from_file

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(
            {
                "id": "x1",
                "lang": "en",
                "text": "Obama visited Paris .",
                "entities": [{"start": 0, "end": 5, "label": "POLITICIAN"}],
            }
        )
        + "\n"
    )
    with pytest.raises(
        TrainingDataError,
        match=r"bad\.jsonl: no sentence to evaluate "
        r"\(0 read; quarantined: \{'unknown_label': 1\}\)",
    ):
        examples_from_file(bad, dataset="wikineural")
    good = tmp_path / "mixed.jsonl"
    good.write_text(
        bad.read_text()
        + json.dumps(
            {
                "id": "x2",
                "lang": "en",
                "text": "Obama visited Paris .",
                "entities": [{"start": 0, "end": 5, "label": "PER", "text": "Obama"}],
            }
        )
        + "\n"
    )
    examples, counts = examples_from_file(good, dataset="wikineural")
    assert [e.id for e in examples] == ["x2"]
    assert counts == {"sentences_read": 1, "quarantined": {"unknown_label": 1}, "repaired": {}}


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (["train", "build", "--snapshot", "no-such-tag", "-o", "out"], None, "no-such-tag"),
        (
            ["train", "run", "--data", "data"],
            "model: {base_model: ./missing-model, device: cpu}\n",
            "base model path",
        ),
        (
            ["train", "run", "--data", "data"],
            "model: {base_model: ./m, device: cpu}\ntrain: {epochs: many}\n",
            "train.epochs",
        ),
        (
            ["train", "run", "--data", "data"],
            "model:\n  base_model: x\n  device: cpu: gpu\n",
            "c.yaml:3",
        ),
        (["train", "run", "--data", "data"], "modle: {}\n", "modle"),
        (["train", "eval"], "model: {device: cpu}\n", "exactly one of --data"),
    ],
)
def test_user_mistakes_give_one_line_errors(tagged_home, tmp_path, args, config, message):
    if config is not None:
        (tmp_path / "c.yaml").write_text(config)
        args = [*args, "-c", "c.yaml"]
    res = cli(*args, home=tagged_home, cwd=tmp_path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert message in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_snapshot_without_accepted_pairs_is_refused(tmp_path):
    from parallelner import store

    home = tmp_path / "home"
    settings = load_settings(home=home)
    records = [
        r.model_copy(update={"status": Status.REVIEW})
        for r in records_from_projection_gold(PUD, limit=5)
    ]
    store.commit(records, "only-review", settings=settings)
    store.create_tag("nothing-accepted", settings=settings)
    res = cli(
        "train", "build", "--snapshot", "nothing-accepted", "-o", "out", home=home, cwd=tmp_path
    )
    assert res.returncode == 2
    assert "snapshot nothing-accepted: no accepted pairs" in res.stderr
    assert not (tmp_path / "out").exists()


def test_every_train_command_has_help(tmp_path):
    for cmd in ("build", "tiny-model", "run", "eval", "merge"):
        res = cli("train", cmd, "--help", home=tmp_path, cwd=REPO)
        assert res.returncode == 0 and "Usage" in res.stdout, cmd

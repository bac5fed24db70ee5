"""Fixtures of the training tests: real gold pairs, a build, a tiny model, a tiny config.

Everything runs on the CPU with no download: the pairs are the human-aligned PUD en-zh
sentences in data/projection-dev, the tokenizer is trained on their instruction data and
the model is a 2-layer Llama with hidden size 64 built from a config.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from parallelner.testing.samples import records_from_projection_gold
from training.build import build_from_records, read_examples
from training.config import BuildConfig, Config, load_config

PUD = Path(__file__).resolve().parents[2] / "data" / "projection-dev" / "pud-en-zh.jsonl"
EUROPARL_DE = PUD.with_name("europarl-en-de.jsonl")

BUILD = BuildConfig(dev_ratio=0.2, negatives=2, max_classes=4, seed=7)


@pytest.fixture(scope="session")
def gold_records():
    """40 real en->zh pairs with human-aligned target spans, as accepted records."""
    return records_from_projection_gold(PUD, limit=40)


@pytest.fixture(scope="session")
def built(tmp_path_factory, gold_records) -> Path:
    """A build directory (train.jsonl, dev.jsonl, manifest.json) of the gold pairs."""
    out = tmp_path_factory.mktemp("build") / "data"
    build_from_records(gold_records, out, BUILD, snapshot="gold-test")
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, built) -> Path:
    """A random 2-layer Llama and a BPE tokenizer trained on the build's examples."""
    from training.tiny import make_tiny_model

    texts = [e.prompt + e.completion for e in read_examples(built / "train.jsonl")]
    return make_tiny_model(tmp_path_factory.mktemp("tiny"), texts, vocab_size=1200)


def tiny_config(model_dir: Path, output_dir: Path, **overrides) -> Config:
    """A CPU config for the tiny model: a few LoRA steps, short generation."""
    knobs = {
        "model.base_model": str(model_dir),
        "model.device": "cpu",
        "model.max_seq_length": 1024,
        "model.overlong": "truncate",
        "lora.r": 8,
        "lora.alpha": 16,
        "train.output_dir": str(output_dir),
        "train.max_steps": 24,
        "train.per_device_batch_size": 4,
        "train.gradient_accumulation": 1,
        "train.learning_rate": 1e-2,
        "train.warmup": 0,
        "train.logging_steps": 4,
        "train.save_steps": 12,
        "train.gradient_checkpointing": False,
        "eval.backend": "transformers",
        "eval.max_new_tokens": 24,
        "eval.batch_size": 8,
        **overrides,
    }
    return load_config(None, **knobs)

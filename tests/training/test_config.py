"""Training configs: the checked-in files load, bad values and devices fail early."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from parallelner.errors import ConfigError
from training.config import load_config
from training.errors import DeviceError, ModelSourceError
from training.modeling import check_model_source, preflight, resolve_device

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


def test_default_config_is_the_papers_setup():
    cfg = load_config(CONFIGS / "lora-sft.yaml")
    assert cfg.lora.r == 32
    assert cfg.model.base_model == "Qwen/Qwen2.5-7B"
    assert cfg.model.dtype == "bfloat16" and cfg.model.device == "cuda"
    assert cfg.train.gradient_checkpointing and cfg.train.group_by_length
    assert cfg.train.output_dir == (CONFIGS.parents[1] / "runs" / "lora-sft").resolve()
    assert load_config(None).lora.r == 32  # the built-in defaults agree


@pytest.mark.parametrize("name", ["tiny-cpu.yaml", "gpu-smoke.yaml"])
def test_other_checked_in_configs_load(name):
    cfg = load_config(CONFIGS / name)
    assert Path(cfg.model.base_model).is_absolute()  # ./ paths resolved against the file


def test_overrides_win_over_the_file():
    cfg = load_config(CONFIGS / "lora-sft.yaml", **{"train.max_steps": 7, "lora.r": None})
    assert cfg.train.max_steps == 7 and cfg.lora.r == 32


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lora: {r: 0}\n", "lora.r"),
        ("lora: {rank: 32}\n", "lora.rank"),
        ("build: {mix: {ner: 1.0, summarise: 1.0}}\n", "build.mix"),
        ("model: {overlong: chop}\n", "model.overlong"),
        ("- just\n- a list\n", "expected a mapping"),
        ("train:\n  epochs: 3\n   lr: 1\n", "cfg.yaml:3"),
    ],
)
def test_bad_config_names_the_key_or_line(tmp_path, text, message):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_cuda_without_a_gpu_is_refused(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = load_config(None, **{"model.device": "cuda"})
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        resolve_device(cfg.model)
    auto = resolve_device(load_config(None, **{"model.device": "auto"}).model)
    assert (auto.device, auto.dtype) == ("cpu", "float32")


def test_base_model_paths_are_checked(tmp_path):
    with pytest.raises(ModelSourceError, match="does not exist"):
        check_model_source(str(tmp_path / "no-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match="no config.json"):
        check_model_source(str(tmp_path / "empty"))
    cfg = load_config(
        None, **{"model.base_model": str(tmp_path / "no-model"), "model.device": "cpu"}
    )
    with pytest.raises(ModelSourceError):
        preflight(cfg)


def _plugin_fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("name", ["deepspeed-zero2.yaml", "deepspeed-zero3.yaml", "fsdp.yaml"])
def test_accelerate_configs_use_only_real_plugin_options(name):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin

    path = CONFIGS / "accelerate" / name
    loaded = load_config_from_file(str(path))
    assert loaded.mixed_precision == "bf16"
    raw = yaml.safe_load(path.read_text())
    if raw["distributed_type"] == "DEEPSPEED":
        options = raw["deepspeed_config"]
        assert set(options) - {"gradient_clipping"} <= _plugin_fields(DeepSpeedPlugin)
        # the accumulation steps DeepSpeed sees must match the training config's
        assert (
            options["gradient_accumulation_steps"]
            == load_config(CONFIGS / "lora-sft.yaml").train.gradient_accumulation
        )
    else:
        fields = _plugin_fields(FullyShardedDataParallelPlugin)
        options = {k if k in fields else k.removeprefix("fsdp_") for k in raw["fsdp_config"]}
        assert options <= fields

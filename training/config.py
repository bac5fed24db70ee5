"""The training configuration: every knob of build, LoRA SFT and evaluation in one file.

Read from YAML (``training/configs/lora-sft.yaml`` is the documented default) into a
frozen pydantic model. Unknown keys are errors, so a typo never silently falls back to a
default. Paths inside the file are relative to the file's own directory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from parallelner.errors import ConfigError
from parallelner.settings import read_yaml_mapping

__all__ = [
    "BuildConfig",
    "ModelConfig",
    "LoraConfig",
    "TrainConfig",
    "EvalConfig",
    "Config",
    "load_config",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BuildConfig(_Section):
    """Instruction data: which tasks, how much of each, schema sampling, the split."""

    statuses: tuple[str, ...] = ("accepted", "reviewed_accepted")
    # Sampling rate per task: 1.0 = every example once, 0.5 = half, 2.0 = twice.
    mix: dict[Literal["ner", "alignment"], float] = Field(
        default_factory=lambda: {"ner": 1.0, "alignment": 1.0}
    )
    # KnowCoder schema sampling: each gold class is kept with this probability (a dropped
    # class's mentions leave the answer), plus `negatives` classes absent from the sentence.
    positive_keep: float = Field(default=0.9, ge=0.0, le=1.0)
    negatives: int = Field(default=3, ge=0)
    max_classes: int = Field(default=8, ge=1)
    dev_ratio: float = Field(default=0.05, ge=0.0, lt=1.0)
    seed: int = 13


class ModelConfig(_Section):
    """Base model and how it is loaded."""

    base_model: str = "Qwen/Qwen2.5-7B"  # hub id or local directory
    tokenizer: str | None = None  # default: the base model's tokenizer
    device: Literal["auto", "cuda", "cpu"] = "auto"  # cuda = fail early without a GPU
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"  # on GPU; CPU uses float32
    attn_implementation: str | None = None  # e.g. "flash_attention_2", "sdpa"
    max_seq_length: int = Field(default=2048, ge=16)
    # Example longer than max_seq_length: "skip" it, or "truncate" the prompt's head
    # (the schema definitions) keeping the sentence and the whole answer.
    overlong: Literal["skip", "truncate"] = "skip"


class LoraConfig(_Section):
    """LoRA adapter (rank 32 as in KnowCoder-X)."""

    r: int = Field(default=32, ge=1)
    alpha: int = Field(default=64, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"


class TrainConfig(_Section):
    """Optimisation and checkpoints (passed to transformers' TrainingArguments)."""

    output_dir: Path = Path("runs/lora-sft")
    epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup: float = 0.03  # ratio of steps if < 1, else a step count
    weight_decay: float = 0.0
    per_device_batch_size: int = Field(default=4, ge=1)
    gradient_accumulation: int = Field(default=8, ge=1)
    gradient_checkpointing: bool = True
    group_by_length: bool = True
    logging_steps: int = Field(default=10, ge=1)
    save_steps: int = Field(default=200, ge=1)
    save_total_limit: int = Field(default=3, ge=1)
    seed: int = 13
    resume: bool = True  # continue from the newest checkpoint in output_dir


class EvalConfig(_Section):
    """Generation for evaluation."""

    backend: Literal["auto", "vllm", "transformers"] = "auto"  # auto: vLLM if installed + GPU
    max_new_tokens: int = Field(default=256, ge=1)
    batch_size: int = Field(default=8, ge=1)
    limit: int | None = None  # evaluate only the first N examples


class Config(_Section):
    """The whole training configuration."""

    build: BuildConfig = Field(default_factory=BuildConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    def config_hash(self) -> str:
        """Short content hash of the settings (recorded in manifests and reports)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make relative local paths in the file relative to the file's directory."""
    model = data.get("model") or {}
    for key in ("base_model", "tokenizer"):
        value = model.get(key)
        if isinstance(value, str) and value.startswith(("./", "../")):
            model[key] = str((base / value).resolve())
    train = data.get("train") or {}
    out = train.get("output_dir")
    if isinstance(out, str) and not Path(out).is_absolute():
        train["output_dir"] = str((base / out).resolve())
    return data


def load_config(path: Path | None = None, **overrides: Any) -> Config:
    """Read a training config YAML (None = defaults); ``overrides`` are dotted keys.

    ``load_config(p, **{"train.max_steps": 10})`` sets one knob from the command line.
    Raises ConfigError with ``file:line`` or the offending key.
    """
    data: dict[str, Any] = {}
    where = "training config"
    if path is not None:
        path = Path(path)
        where = str(path)
        data = read_yaml_mapping(path, "sections (build/model/lora/train/eval)")
        data = _resolve_paths(data, path.resolve().parent)
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        data.setdefault(section, {})[key] = value
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "config"
            problems.append(f"{loc}: {err['msg']}")
        raise ConfigError(f"{where}: invalid training config: " + "; ".join(problems)) from None

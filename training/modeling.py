"""Loading the base model, tokenizer and adapters, with the checks that must come first.

Everything that can fail in a user's set-up (a base model path that does not exist, a
hub id that cannot be resolved, ``device: cuda`` on a machine without a GPU) is checked
by ``preflight`` before any data is tokenized or any weights are loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.config import Config, ModelConfig
from training.errors import DeviceError, ModelSourceError

__all__ = [
    "Runtime",
    "resolve_device",
    "check_model_source",
    "preflight",
    "load_tokenizer",
    "load_base_model",
    "load_for_inference",
    "merge_adapter",
]


@dataclass(frozen=True)
class Runtime:
    """Where and in which precision the model runs."""

    device: str  # "cuda" | "cpu"
    dtype: str  # "bfloat16" | "float16" | "float32"


def resolve_device(cfg: ModelConfig) -> Runtime:
    """The device and dtype for ``cfg``; DeviceError if it asks for a GPU there is none of."""
    import torch

    has_cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not has_cuda:
        raise DeviceError(
            "model.device is 'cuda' but no CUDA GPU is visible (torch "
            f"{torch.__version__}); set model.device: cpu (or auto) to run on the CPU"
        )
    device = "cuda" if (cfg.device == "cuda" or (cfg.device == "auto" and has_cuda)) else "cpu"
    dtype = cfg.dtype if device == "cuda" else "float32"
    if device == "cuda" and dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise DeviceError(
            "model.dtype is bfloat16 but this GPU does not support it; use model.dtype: float16"
        )
    return Runtime(device, dtype)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or "\\" in name or name.count("/") > 1


def check_model_source(name: str, what: str = "base model") -> str:
    """Return ``name`` if it is a readable model directory or a resolvable hub id.

    A local path must exist and hold ``config.json`` (or, for a tokenizer, tokenizer
    files). A hub id is resolved by fetching only its config (cached afterwards); a name
    that is neither gives ModelSourceError before any long work.
    """
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelSourceError(f"{what} {name}: not a directory")
        wanted = (
            ("tokenizer.json", "tokenizer_config.json")
            if what == "tokenizer"
            else ("config.json", "adapter_config.json")
        )
        if not any((path / f).exists() for f in wanted):
            raise ModelSourceError(f"{what} {name}: no {' or '.join(wanted)} in the directory")
        return str(path)
    if _looks_like_path(name):
        raise ModelSourceError(f"{what} path {name} does not exist")
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(name)
    except Exception as exc:  # OSError, HTTP errors, offline mode...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelSourceError(
            f"{what} {name}: not a local directory and not resolvable on the Hugging Face "
            f"hub ({first[:200]})"
        ) from None
    return name


def preflight(cfg: Config) -> Runtime:
    """Every check that must pass before training or evaluation starts."""
    runtime = resolve_device(cfg.model)
    check_model_source(cfg.model.base_model)
    if cfg.model.tokenizer:
        check_model_source(cfg.model.tokenizer, "tokenizer")
    return runtime


def load_tokenizer(cfg: ModelConfig) -> Any:
    """The tokenizer (pad token set to eos when the model has none)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.base_model)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base_model(cfg: ModelConfig, runtime: Runtime) -> Any:
    """The base causal LM in the runtime's dtype, on the runtime's device."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": getattr(torch, runtime.dtype)}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    model = AutoModelForCausalLM.from_pretrained(cfg.base_model, **kwargs)
    return model.to(runtime.device)


def load_for_inference(cfg: ModelConfig, runtime: Runtime, adapter: Path | None) -> Any:
    """Base model with the LoRA adapter applied (``adapter=None``: the base model alone)."""
    model = load_base_model(cfg, runtime)
    if adapter is not None:
        from peft import PeftModel

        check_model_source(str(adapter), "adapter")
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    return model


def merge_adapter(cfg: ModelConfig, adapter: Path, out_dir: Path) -> Path:
    """Merge the LoRA adapter into the base weights and save a plain model to ``out_dir``."""
    runtime = Runtime("cpu", "float32") if cfg.device != "cuda" else resolve_device(cfg)
    model = load_for_inference(cfg, runtime, adapter).merge_and_unload()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    load_tokenizer(cfg).save_pretrained(out_dir)
    return out_dir

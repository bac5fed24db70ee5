"""LoRA supervised fine-tuning on the instruction data (transformers Trainer + peft).

``train(cfg, data_dir)``: checks first (device, base model, data), then tokenizes with
loss on the answer only, builds the LoRA model (rank 32 by default), and trains with
length-grouped batches, bf16 on GPU and gradient checkpointing. Checkpoints go to
``train.output_dir/checkpoint-N`` every ``save_steps``; a rerun with ``resume: true``
continues from the newest one. The final adapter is saved to ``output_dir/adapter`` and
a ``train_report.json`` records losses, throughput and every count.

Multi-GPU: launch the same entry point with ``accelerate launch --config_file
training/configs/accelerate/<zero2|zero3|fsdp>.yaml -m training.sft CONFIG DATA_DIR``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from training.config import Config
from training.errors import TrainingDataError

__all__ = ["train", "lora_model", "training_arguments"]


def lora_model(model: Any, cfg: Config) -> Any:
    """Wrap ``model`` with a LoRA adapter as configured (only the adapter is trained)."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    if cfg.train.gradient_checkpointing:
        model.config.use_cache = False
        model.enable_input_require_grads()  # checkpointed inputs need grads under LoRA
    return get_peft_model(model, lora)


def training_arguments(cfg: Config, device: str, dtype: str, has_dev: bool) -> Any:
    """transformers TrainingArguments from the config (the one place they are mapped)."""
    from transformers import TrainingArguments

    t = cfg.train
    return TrainingArguments(
        output_dir=str(t.output_dir),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup,
        weight_decay=t.weight_decay,
        per_device_train_batch_size=t.per_device_batch_size,
        per_device_eval_batch_size=t.per_device_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation,
        activation_checkpointing=t.gradient_checkpointing,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        length_column_name="length",
        logging_steps=t.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        eval_strategy="no",
        bf16=device == "cuda" and dtype == "bfloat16",
        fp16=device == "cuda" and dtype == "float16",
        use_cpu=device == "cpu",
        seed=t.seed,
        data_seed=t.seed,
        report_to="none",
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",  # tokens/s counts real tokens
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def _LogCallback(say: Any) -> Any:
    """A Trainer callback that hands each log line to ``say``."""
    from transformers import TrainerCallback

    class LogCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in logs.items()}
                say(f"step {state.global_step}: {shown}")

    return LogCallback()


def _step_of(checkpoint: str) -> int:
    """The step a ``checkpoint-N`` folder was saved at."""
    return int(Path(checkpoint).name.split("-")[-1])


def _restore(trainer: Any, model: Any, checkpoint: str) -> None:
    """The checkpoint's adapter weights and trainer state, without training."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import TrainerState

    set_peft_model_state_dict(model, load_file(str(Path(checkpoint) / "adapter_model.safetensors")))
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))


def train(cfg: Config, data_dir: Path, log: Any = None) -> dict[str, Any]:
    """Train the LoRA adapter on ``data_dir/train.jsonl``; return the report (also saved)."""
    from training.data import PadCollator, check_example_file, tokenize_file
    from training.modeling import load_base_model, load_tokenizer, preflight

    say = log or (lambda msg: print(msg, file=sys.stderr))
    runtime = preflight(cfg)  # device, base model, tokenizer: before any long work
    data_dir = Path(data_dir)
    train_file, dev_file = data_dir / "train.jsonl", data_dir / "dev.jsonl"
    if check_example_file(train_file) == 0:
        raise TrainingDataError(f"{train_file}: no training examples")
    manifest_path = data_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}

    tokenizer = load_tokenizer(cfg.model)
    max_len = cfg.model.max_seq_length
    cache = Path(cfg.train.output_dir) / ".cache"
    train_set, counts = tokenize_file(train_file, tokenizer, max_len, cfg.model.overlong, cache)
    dev_set, dev_counts = (
        tokenize_file(dev_file, tokenizer, max_len, cfg.model.overlong, cache)
        if dev_file.exists()
        else (None, {"examples": 0, "kept": 0})
    )
    if dev_set is not None and len(dev_set) == 0:
        dev_set = None
    say(f"train examples: {counts}; dev examples: {dev_counts}")
    if not counts["kept"]:
        raise TrainingDataError(
            f"{train_file}: every example is longer than model.max_seq_length="
            f"{max_len} tokens ({counts}); raise it or set model.overlong: truncate"
        )

    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = lora_model(load_base_model(cfg.model, runtime), cfg)
    trainable, total = model.get_nb_trainable_parameters()
    args = training_arguments(cfg, runtime.device, runtime.dtype, dev_set is not None)
    trainer = Trainer(
        model=model,
        args=args,
        data_collator=PadCollator(tokenizer.pad_token_id),
        train_dataset=train_set,
        eval_dataset=dev_set,
        processing_class=tokenizer,
    )
    # progress lines go to `say` (stderr in the CLI), never to stdout, which --json owns
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(_LogCallback(say))
    last = get_last_checkpoint(str(out)) if cfg.train.resume else None
    if last:
        say(f"resuming from {last}")
    if runtime.device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    if last and 0 < cfg.train.max_steps <= _step_of(last):
        # resuming at max_steps, the Trainer would take one step more: none is asked for
        say(
            f"{last} has trained train.max_steps={cfg.train.max_steps} steps already: "
            "nothing to train (raise train.max_steps to train further)"
        )
        _restore(trainer, model, last)
        train_loss = None  # this run trained nothing; "losses" holds the earlier ones
    else:
        train_loss = trainer.train(resume_from_checkpoint=last).training_loss
    elapsed = time.perf_counter() - started
    dev_loss = trainer.evaluate()["eval_loss"] if dev_set is not None else None

    adapter_dir = out / "adapter"
    model.save_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    peak = None
    if runtime.device == "cuda":
        import torch

        peak = torch.cuda.max_memory_allocated() / 2**30
    steps_done = trainer.state.global_step - (_step_of(last) if last else 0)
    tokens = trainer.state.num_input_tokens_seen
    if last:  # count only this run's tokens
        state = json.loads((Path(last) / "trainer_state.json").read_text())
        tokens -= state.get("num_input_tokens_seen", 0)
    report = {
        "snapshot": manifest.get("snapshot"),
        "config_hash": cfg.config_hash(),
        "base_model": cfg.model.base_model,
        "device": runtime.device,
        "dtype": runtime.dtype,
        "lora": cfg.lora.model_dump(mode="json"),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "resumed_from": last,
        "global_step": trainer.state.global_step,
        "steps_this_run": steps_done,
        "train_loss": train_loss,
        "losses": losses,
        "dev_loss": dev_loss,
        "train_counts": counts,
        "dev_counts": dev_counts,
        "seconds": elapsed,
        "steps_per_second": steps_done / elapsed if elapsed else None,
        "tokens_seen": tokens,  # non-padding tokens of this run
        "tokens_per_second": tokens / elapsed if elapsed and tokens else None,
        "peak_gpu_memory_gib": peak,
        "adapter": str(adapter_dir),
    }
    (out / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    """``python -m training.sft CONFIG DATA_DIR`` (what ``accelerate launch`` runs)."""
    from training.config import load_config

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        sys.exit("usage: python -m training.sft CONFIG.yaml DATA_DIR")
    report = train(load_config(Path(argv[0])), Path(argv[1]))
    print(json.dumps({k: report[k] for k in ("global_step", "train_loss", "adapter")}))


if __name__ == "__main__":
    main()

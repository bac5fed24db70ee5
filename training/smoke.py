"""The whole training pipeline on real pairs, timed: ``python -m training.smoke``.

Commits the human-aligned pairs of ``data/projection-dev`` to a fresh store, tags them,
builds the instruction data from the tag, makes a small Llama from a config (or uses
``--base-model``), trains LoRA and evaluates, then prints steps/s, tokens/s and peak
GPU memory. ``training/scripts/gpu_smoke.sh`` runs it on CUDA in bf16; with
``--device cpu`` and a tiny size it runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAIRS = {
    "pud-en-zh.jsonl": "wikineural",
    "europarl-en-de.jsonl": "wikineural",
    "europarl-en-es.jsonl": "wikineural",
    "europarl-en-it.jsonl": "wikineural",
}


def main(argv: list[str] | None = None) -> dict:
    """Run the smoke pipeline; return (and print) the measured figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=REPO / "training/configs/gpu-smoke.yaml")
    p.add_argument("--work", type=Path, default=REPO / "runs/gpu-smoke")
    p.add_argument("--base-model", help="a real model directory instead of the small one")
    p.add_argument("--device", choices=["cuda", "cpu", "auto"])
    p.add_argument("--steps", type=int)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--vocab-size", type=int, default=8000)
    args = p.parse_args(argv)

    from parallelner import store
    from parallelner.settings import load_settings
    from parallelner.testing.samples import records_from_projection_gold
    from training.build import build_from_snapshot, read_examples
    from training.config import load_config
    from training.evaluate import evaluate
    from training.sft import train
    from training.tiny import make_tiny_model

    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    model_dir = Path(args.base_model) if args.base_model else work / "model"
    cfg = load_config(
        args.config,
        **{
            "model.base_model": str(model_dir),
            "model.device": args.device,
            "train.max_steps": args.steps,
            "train.output_dir": str(work / "sft"),
        },
    )
    settings = load_settings(home=work / "home")
    records = []
    for name, dataset in PAIRS.items():
        records += records_from_projection_gold(
            REPO / "data/projection-dev" / name, dataset, run_id=f"smoke-{name.split('.')[0]}"
        )
    store.commit(records, "smoke", settings=settings)
    store.create_tag("smoke-v1", settings=settings)
    t0 = time.perf_counter()
    manifest = build_from_snapshot("smoke-v1", work / "data", cfg.build, home=settings.home)
    build_s = time.perf_counter() - t0
    if not args.base_model:
        texts = [e.prompt + e.completion for e in read_examples(work / "data/train.jsonl")]
        make_tiny_model(
            model_dir,
            texts,
            vocab_size=args.vocab_size,
            hidden=args.hidden,
            layers=args.layers,
            heads=max(1, args.hidden // 64),
            max_positions=cfg.model.max_seq_length,
        )
    report = train(cfg, work / "data")
    dev = read_examples(work / "data/dev.jsonl")
    t0 = time.perf_counter()
    scores = evaluate(cfg, dev, Path(report["adapter"]), work / "eval")
    eval_s = time.perf_counter() - t0
    figures = {
        "device": report["device"],
        "dtype": report["dtype"],
        "base_model": "small Llama from config" if not args.base_model else args.base_model,
        "parameters": report["total_parameters"],
        "trainable_parameters": report["trainable_parameters"],
        "pairs": manifest["records"]["used"],
        "train_examples": manifest["examples"]["train"],
        "build_seconds": round(build_s, 2),
        "steps": report["steps_this_run"],
        "steps_per_second": round(report["steps_per_second"], 3),
        "tokens_per_second": round(report["tokens_per_second"] or 0, 1),
        "peak_gpu_memory_gib": report["peak_gpu_memory_gib"],
        "first_loss": report["losses"][0],
        "last_loss": report["losses"][-1],
        "eval_examples": scores["overall"]["examples"],
        "eval_seconds": round(eval_s, 2),
        "eval_f1": round(scores["overall"]["f1"], 4),
        "eval_malformed": scores["overall"]["malformed"],
    }
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()

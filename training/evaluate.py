"""Evaluate a (LoRA-tuned) model: generate code, parse it with ``ast``, score strictly.

Inputs: the held-out ``dev.jsonl`` of a build (both tasks, both languages), or any NER
file the project reads (span JSONL, CoNLL, CLUENER...; rendered as extraction prompts
over the classes of its dataset's label map). Generation uses vLLM offline when it is installed and a GPU is present
(``eval.backend: auto``), transformers ``generate`` otherwise; decoding is greedy.
Replies are read by ``schemas.parse.parse_results`` (never ``eval``) and scored by
``training.metrics.score``; the report counts malformed replies and overlong prompts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.config import Config
from training.instructions import Example

__all__ = ["examples_from_file", "generate", "evaluate_examples", "evaluate"]


def examples_from_file(
    path: Path, dataset: str | None = None, fmt: str | None = None, lang: str | None = None
) -> tuple[list[Example], dict[str, Any]]:
    """Extraction examples for every sentence of an NER file, and the read counts.

    Any format the project reads (span JSONL, CoNLL / WikiNEuRal, CLUENER, Parquet;
    ``parallelner.readers``). Every class of the dataset's label map is shown in the
    prompt. ``dataset`` names the label map; default: each sentence's own dataset.
    Quarantined lines (bad offsets, labels outside the map...) are counted, not scored;
    a file with nothing left, or a label with no ontology class, stops with
    TrainingDataError (before any model is loaded).
    """
    from parallelner.readers import ReadReport, read_instances
    from schemas.label_maps import known_datasets
    from schemas.render import render_prompt, render_results
    from training.errors import TrainingDataError
    from training.instructions import LabelResolver

    report = ReadReport()
    instances = list(read_instances(path, fmt, report=report, dataset=dataset, lang=lang))
    resolver = LabelResolver()
    unknown: Counter[str] = Counter()
    for inst in instances:
        name = dataset or inst.source_dataset
        if resolver.map_for(name) is None:
            raise TrainingDataError(
                f"{path}: no label map for dataset {name!r}; pass --dataset "
                f"({', '.join(known_datasets())})"
            )
        unknown.update(
            f"{name}:{e.label}" for e in inst.entities if resolver.resolve(name, e.label) is None
        )
    if unknown:
        listed = ", ".join(f"{k} ({n})" for k, n in unknown.most_common())
        raise TrainingDataError(f"{path}: labels missing from the ontology: {listed}")
    out = []
    for inst in instances:
        name = dataset or inst.source_dataset
        schema = list(dict.fromkeys(resolver.map_for(name).values()))
        gold = tuple((resolver.resolve(name, e.label), e.text) for e in inst.entities)
        out.append(
            Example(
                id=inst.id,
                task="ner",
                split="dev",
                instance_id=inst.id,
                record_id=inst.id,
                dataset=name,
                lang=inst.lang,
                classes=tuple(schema),
                prompt=render_prompt(inst.text, schema),
                completion=render_results(gold),
                gold=gold,
            )
        )
    counts = {
        "sentences_read": report.sentences,
        "quarantined": dict(sorted(report.quarantined.items())),
        "repaired": dict(sorted(report.repaired.items())),
    }
    if not out:
        raise TrainingDataError(
            f"{path}: no sentence to evaluate ({report.sentences} read; "
            f"quarantined: {counts['quarantined'] or 'none'})"
        )
    return out, counts


def _use_vllm(cfg: Config, device: str) -> bool:
    if cfg.eval.backend == "transformers":
        return False
    try:
        import vllm  # noqa: F401
    except ImportError:
        if cfg.eval.backend == "vllm":
            from training.errors import ModelSourceError

            raise ModelSourceError(
                "eval.backend is vllm but vllm is not installed (pip install -e '.[vllm]')"
            ) from None
        return False
    return device == "cuda"


def _generate_vllm(cfg: Config, prompts: Sequence[str], adapter: Path | None) -> list[str]:
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    llm = LLM(
        model=cfg.model.base_model,
        tokenizer=cfg.model.tokenizer or cfg.model.base_model,
        dtype=cfg.model.dtype,
        max_model_len=cfg.model.max_seq_length,
        enable_lora=adapter is not None,
        max_lora_rank=max(cfg.lora.r, 8),
    )
    params = SamplingParams(temperature=0.0, max_tokens=cfg.eval.max_new_tokens)
    lora = LoRARequest("adapter", 1, str(adapter)) if adapter is not None else None
    outs = llm.generate(list(prompts), params, lora_request=lora)
    return [o.outputs[0].text for o in outs]


def _generate_transformers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int,
    device: str,
) -> list[str]:
    import torch

    tokenizer.padding_side = "left"
    replies: list[str] = []
    for i in range(0, len(prompts), batch_size):
        batch = tokenizer(list(prompts[i : i + batch_size]), return_tensors="pt", padding=True)
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new = out[:, batch["input_ids"].shape[1] :]
        replies.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    return replies


def generate(cfg: Config, prompts: Sequence[str], adapter: Path | None) -> list[str]:
    """Greedy completions of ``prompts`` by the base model with ``adapter`` applied."""
    from training.modeling import load_for_inference, load_tokenizer, preflight

    runtime = preflight(cfg)
    if _use_vllm(cfg, runtime.device):
        return _generate_vllm(cfg, prompts, adapter)
    tokenizer = load_tokenizer(cfg.model)
    model = load_for_inference(cfg.model, runtime, adapter)
    return _generate_transformers(
        model, tokenizer, prompts, cfg.eval.max_new_tokens, cfg.eval.batch_size, runtime.device
    )


def evaluate_examples(
    examples: Sequence[Example], replies: Sequence[str], extra: dict[str, int] | None = None
) -> dict[str, Any]:
    """Score replies against the examples' gold (per language, dataset, task and class)."""
    from training.metrics import read_prediction, score

    items = []
    for ex, reply in zip(examples, replies, strict=True):
        meta = {"lang": ex.lang, "dataset": ex.dataset, "task": ex.task}
        items.append((meta, ex.gold, read_prediction(reply)))
    report = score(items)
    report["counts"] = {"examples": len(examples), **(extra or {})}
    return report


def evaluate(
    cfg: Config,
    examples: Sequence[Example],
    adapter: Path | None,
    out_dir: Path | None = None,
    counts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Generate for ``examples``, score, and (with ``out_dir``) save replies and report.

    ``counts`` (e.g. the read counts of the input file) are added to ``report["counts"]``.

    Prompts that leave no room for ``max_new_tokens`` within ``model.max_seq_length``
    are skipped and counted (``skipped_overlong``), never silently cut.
    """
    from training.modeling import load_tokenizer, preflight

    preflight(cfg)
    if cfg.eval.limit is not None:
        examples = list(examples)[: cfg.eval.limit]
    tokenizer = load_tokenizer(cfg.model)
    room = cfg.model.max_seq_length - cfg.eval.max_new_tokens
    kept, skipped = [], Counter()
    for ex in examples:
        if len(tokenizer(ex.prompt)["input_ids"]) > room:
            skipped["skipped_overlong"] += 1
        else:
            kept.append(ex)
    replies = generate(cfg, [e.prompt for e in kept], adapter) if kept else []
    report = evaluate_examples(kept, replies, {**(counts or {}), **skipped})
    report["adapter"] = str(adapter) if adapter else None
    report["base_model"] = cfg.model.base_model
    report["config_hash"] = cfg.config_hash()
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        with (out_dir / "predictions.jsonl").open("w", encoding="utf-8") as f:
            for ex, reply in zip(kept, replies, strict=True):
                f.write(
                    json.dumps(
                        {
                            "id": ex.id,
                            "task": ex.task,
                            "lang": ex.lang,
                            "gold": ex.gold,
                            "reply": reply,
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
        (out_dir / "eval_report.json").write_text(
            json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    return report

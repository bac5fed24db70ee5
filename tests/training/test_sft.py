"""LoRA SFT on the CPU with a tiny random model: answer-only loss, loss goes down, resume,
adapter save/load/merge, evaluation end to end."""

from __future__ import annotations

import json

import pytest

from tests.training.conftest import tiny_config
from training.build import read_examples
from training.data import IGNORE_INDEX, PadCollator, encode_example, encode_examples
from training.errors import TrainingDataError


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model, built):
    """One short training run shared by the tests below (24 steps, checkpoint at 12, 24)."""
    from training.sft import train

    out = tmp_path_factory.mktemp("sft")
    cfg = tiny_config(tiny_model, out)
    return cfg, train(cfg, built, log=lambda m: None)


def test_loss_is_on_the_answer_only(built, tokenizer):
    ex = read_examples(built / "train.jsonl")[0]
    row, status = encode_example(ex, tokenizer, 4096, "skip")
    assert status is None
    answer = [
        t for t, lab in zip(row["input_ids"], row["labels"], strict=True) if lab != IGNORE_INDEX
    ]
    assert answer[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(answer, skip_special_tokens=True) == ex.completion
    n_prompt = row["labels"].index(next(lab for lab in row["labels"] if lab != IGNORE_INDEX))
    assert tokenizer.decode(row["input_ids"][:n_prompt], skip_special_tokens=True) == ex.prompt


def test_overlong_examples_are_skipped_or_truncated_and_counted(built, tokenizer):
    examples = read_examples(built / "train.jsonl")
    lengths = [
        len(tokenizer(e.prompt)["input_ids"]) + len(tokenizer(e.completion)["input_ids"]) + 1
        for e in examples
    ]
    limit = sorted(lengths)[len(lengths) // 2]
    over = sum(n > limit for n in lengths)
    rows, counts = encode_examples(examples, tokenizer, limit, "skip")
    assert counts == {
        "examples": len(examples),
        "kept": len(examples) - over,
        "skipped_overlong": over,
    }
    rows, counts = encode_examples(examples, tokenizer, limit, "truncate")
    assert counts["truncated"] == over and counts["kept"] == len(examples)
    assert max(r["length"] for r in rows) <= limit
    for r, e in zip(rows, examples, strict=True):  # the whole answer survives truncation
        answer = [
            t for t, lab in zip(r["input_ids"], r["labels"], strict=True) if lab != IGNORE_INDEX
        ]
        assert tokenizer.decode(answer, skip_special_tokens=True) == e.completion
    answers = [len(tokenizer(e.completion)["input_ids"]) + 1 for e in examples]
    tight = sorted(answers)[len(answers) // 2]  # half the answers alone fill the window
    _, counts = encode_examples(examples, tokenizer, tight, "truncate")
    too_long = sum(n >= tight for n in answers)
    assert 0 < too_long < len(examples)
    assert counts["skipped_answer_too_long"] == too_long
    assert counts["kept"] == len(examples) - too_long


def test_collator_pads_ids_labels_and_mask():
    batch = PadCollator(pad_id=0)(
        [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_training_steps_lower_the_loss(trained):
    cfg, report = trained
    losses = report["losses"]
    assert report["global_step"] == 24 and len(losses) >= 5
    assert losses[-1] < losses[0] - 0.2, losses
    assert report["dev_loss"] is not None and report["dev_loss"] < losses[0]
    assert 0 < report["trainable_parameters"] < report["total_parameters"]
    assert report["tokens_per_second"] > 0 and report["steps_per_second"] > 0
    saved = json.loads((cfg.train.output_dir / "train_report.json").read_text())
    assert saved["losses"] == losses


def test_training_resumes_from_the_newest_checkpoint(trained, built):
    from training.sft import train

    cfg, _ = trained
    assert (cfg.train.output_dir / "checkpoint-24").is_dir()
    more = tiny_config(cfg.model.base_model, cfg.train.output_dir, **{"train.max_steps": 28})
    report = train(more, built, log=lambda m: None)
    assert report["resumed_from"].endswith("checkpoint-24")
    assert report["global_step"] == 28 and report["steps_this_run"] == 4


def test_a_rerun_with_the_steps_already_done_trains_no_further(trained, built):
    from training.sft import train

    cfg, _ = trained
    done = json.loads((cfg.train.output_dir / "train_report.json").read_text())["global_step"]
    again = tiny_config(cfg.model.base_model, cfg.train.output_dir, **{"train.max_steps": done})
    report = train(again, built, log=lambda m: None)
    assert report["global_step"] == done and report["steps_this_run"] == 0
    assert report["train_loss"] is None and len(report["losses"]) >= 5
    # the adapter saved is the trained one, not a fresh LoRA
    from safetensors.torch import load_file

    saved = load_file(str(cfg.train.output_dir / "adapter" / "adapter_model.safetensors"))
    checkpoint = load_file(
        str(cfg.train.output_dir / f"checkpoint-{done}" / "adapter_model.safetensors")
    )
    assert saved.keys() == checkpoint.keys()
    assert all(bool((saved[k] == checkpoint[k]).all()) for k in saved)


def test_adapter_saves_loads_and_merges_to_the_same_model(trained, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from training.modeling import merge_adapter

    cfg, report = trained
    adapter = cfg.train.output_dir / "adapter"
    assert (adapter / "adapter_config.json").exists()
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8
    ids = torch.tensor([[1, 50, 60, 70, 80, 90]])
    base = AutoModelForCausalLM.from_pretrained(cfg.model.base_model)
    with torch.no_grad():
        plain = base(ids).logits
        tuned = PeftModel.from_pretrained(base, str(adapter)).eval()(ids).logits
    assert not torch.allclose(plain, tuned, atol=1e-4)  # the adapter changes the model
    merged_dir = merge_adapter(cfg.model, adapter, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, tuned, atol=1e-4)


def test_evaluation_runs_end_to_end_and_counts_everything(trained, built, tmp_path):
    from training.evaluate import evaluate

    cfg, _ = trained
    dev = read_examples(built / "dev.jsonl")[:12]
    report = evaluate(cfg, dev, cfg.train.output_dir / "adapter", tmp_path / "eval")
    o = report["overall"]
    assert report["counts"] == {"examples": 12}
    assert o["examples"] == 12
    assert o["tp"] + o["fn"] == sum(len(e.gold) for e in dev)  # every gold entity scored
    assert set(report["by_lang"]) <= {"en", "zh"} and set(report["by_task"]) <= {"ner", "alignment"}
    lines = (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 12
    assert json.loads((tmp_path / "eval" / "eval_report.json").read_text()) == report


def test_evaluation_skips_and_counts_prompts_that_leave_no_room(trained, built):
    from training.evaluate import evaluate

    cfg, _ = trained
    short = tiny_config(cfg.model.base_model, cfg.train.output_dir, **{"model.max_seq_length": 64})
    report = evaluate(short, read_examples(built / "dev.jsonl")[:4], None)
    assert report["counts"] == {"examples": 0, "skipped_overlong": 4}


def test_all_examples_too_long_is_refused_before_training(tiny_model, built, tmp_path):
    from training.sft import train

    cfg = tiny_config(
        tiny_model, tmp_path / "run", **{"model.max_seq_length": 16, "model.overlong": "skip"}
    )
    with pytest.raises(TrainingDataError, match="longer than model.max_seq_length=16"):
        train(cfg, built, log=lambda m: None)
    assert not (tmp_path / "run" / "adapter").exists()


def test_streaming_tokenization_agrees_with_the_in_memory_path(built, tokenizer, tmp_path):
    from training.data import tokenize_file

    examples = read_examples(built / "train.jsonl")
    for overlong in ("skip", "truncate"):
        rows, counts = encode_examples(examples, tokenizer, 384, overlong)
        dataset, streamed = tokenize_file(
            built / "train.jsonl", tokenizer, 384, overlong, tmp_path / overlong
        )
        assert streamed == counts
        assert counts.get("skipped_overlong", 0) + counts.get("truncated", 0) > 0
        assert dataset["input_ids"] == [r["input_ids"] for r in rows]
        assert dataset["labels"] == [r["labels"] for r in rows]
        assert dataset["length"] == [r["length"] for r in rows]


def test_gradient_checkpointing_still_trains_the_adapter(tiny_model, built, tmp_path):
    from safetensors.torch import load_file

    from training.sft import train

    cfg = tiny_config(
        tiny_model,
        tmp_path / "gc",
        **{"train.gradient_checkpointing": True, "train.max_steps": 2, "train.save_steps": 100},
    )
    report = train(cfg, built, log=lambda m: None)
    assert report["global_step"] == 2
    weights = load_file(str(tmp_path / "gc" / "adapter" / "adapter_model.safetensors"))
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)  # B starts at zero

"""Token ids for SFT: loss on the answer only, overlong examples skipped or truncated.

The prompt and the answer are tokenized separately (exactly as the model sees them at
inference: the prompt, then what it generates) and concatenated; the prompt's labels are
``-100`` so only the answer and the closing eos token carry loss.

An example longer than ``max_seq_length`` is *skipped*, or with ``overlong: truncate``
its prompt loses tokens from the head (the schema definitions) so the sentence and the
whole answer stay; an answer that alone does not fit is always skipped. Both are counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from training.instructions import Example

__all__ = [
    "IGNORE_INDEX",
    "combine",
    "encode_example",
    "encode_examples",
    "check_example_file",
    "tokenize_file",
    "PadCollator",
]

IGNORE_INDEX = -100


def combine(
    prompt: list[int],
    answer: list[int],
    tokenizer: Any,
    max_len: int,
    overlong: Literal["skip", "truncate"],
) -> tuple[dict[str, Any] | None, str | None]:
    """Join prompt and answer token ids (answer + eos carries the loss), fitting ``max_len``.

    Returns the row (input_ids, labels, length), or None and why it was left out;
    the second value is ``"truncated"`` when the prompt's head was cut.
    """
    answer = [*answer, tokenizer.eos_token_id]
    status = None
    if len(prompt) + len(answer) > max_len:
        room = max_len - len(answer)
        if overlong == "skip":
            return None, "skipped_overlong"
        if room < 1:
            return None, "skipped_answer_too_long"
        bos = tokenizer.bos_token_id
        head = prompt[:1] if bos is not None and prompt[:1] == [bos] else []
        prompt = head + prompt[len(prompt) - (room - len(head)) :]
        status = "truncated"
    ids = prompt + answer
    labels = [IGNORE_INDEX] * len(prompt) + answer
    return {"input_ids": ids, "labels": labels, "length": len(ids)}, status


def encode_example(
    example: Example, tokenizer: Any, max_len: int, overlong: Literal["skip", "truncate"]
) -> tuple[dict[str, Any] | None, str | None]:
    """Token ids and labels of one example, or None and why it was left out."""
    prompt = tokenizer(example.prompt, add_special_tokens=True)["input_ids"]
    answer = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
    return combine(prompt, answer, tokenizer, max_len, overlong)


def encode_examples(
    examples: Sequence[Example],
    tokenizer: Any,
    max_len: int,
    overlong: Literal["skip", "truncate"],
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Encode every example in memory; returns the rows and counts (kept, truncated, skipped_*)."""
    rows = []
    counts: Counter[str] = Counter()
    for ex in examples:
        row, status = encode_example(ex, tokenizer, max_len, overlong)
        if status:
            counts[status] += 1
        if row is not None:
            rows.append(row)
    counts["kept"] = len(rows)
    counts["examples"] = len(examples)
    return rows, dict(sorted(counts.items()))


def check_example_file(path: Path) -> int:
    """Validate every line of a build's JSONL file, streaming; return the number of examples."""
    from training.build import iter_example_file

    return sum(1 for _ in iter_example_file(path))


def tokenize_file(
    path: Path,
    tokenizer: Any,
    max_len: int,
    overlong: Literal["skip", "truncate"],
    cache_dir: Path,
) -> tuple[Any, dict[str, int]]:
    """Tokenize a build's JSONL file into an Arrow-backed ``datasets.Dataset``, streaming.

    Memory stays flat for millions of examples (Arrow files under ``cache_dir``).
    Returns the dataset (input_ids, labels, length) of the kept examples and the counts.
    """
    from datasets import Dataset

    n = check_example_file(path)
    if n == 0:
        return None, {"examples": 0, "kept": 0}
    raw = Dataset.from_json(str(path), cache_dir=str(cache_dir))

    def encode(batch: dict[str, list]) -> dict[str, list]:
        prompts = tokenizer(batch["prompt"], add_special_tokens=True)["input_ids"]
        answers = tokenizer(batch["completion"], add_special_tokens=False)["input_ids"]
        out: dict[str, list] = {"input_ids": [], "labels": [], "length": [], "status": []}
        for p, a in zip(prompts, answers, strict=True):
            row, status = combine(p, a, tokenizer, max_len, overlong)
            out["input_ids"].append(row["input_ids"] if row else [])
            out["labels"].append(row["labels"] if row else [])
            out["length"].append(row["length"] if row else 0)
            out["status"].append(status or "")
        return out

    encoded = raw.map(
        encode, batched=True, remove_columns=raw.column_names, desc=f"tokenizing {Path(path).name}"
    )
    statuses = Counter(encoded["status"])
    kept = encoded.filter(lambda length: length > 0, input_columns="length")
    counts: Counter[str] = Counter({k: v for k, v in statuses.items() if k})
    counts["examples"] = n
    counts["kept"] = len(kept)
    return kept.remove_columns("status"), dict(sorted(counts.items()))


class PadCollator:
    """Right-pad a batch: input ids with the pad id, labels with -100, and a mask."""

    def __init__(self, pad_id: int, multiple_of: int | None = None):
        self.pad_id = pad_id
        self.multiple_of = multiple_of

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        if self.multiple_of:
            width = -(-width // self.multiple_of) * self.multiple_of
        ids, labels, mask = [], [], []
        for r in rows:
            pad = width - len(r["input_ids"])
            ids.append(list(r["input_ids"]) + [self.pad_id] * pad)
            labels.append(list(r["labels"]) + [IGNORE_INDEX] * pad)
            mask.append([1] * len(r["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
        }

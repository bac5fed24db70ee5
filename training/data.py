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
from typing import Any, Literal

from training.instructions import Example

__all__ = ["IGNORE_INDEX", "encode_example", "encode_examples", "PadCollator"]

IGNORE_INDEX = -100


def encode_example(
    example: Example, tokenizer: Any, max_len: int, overlong: Literal["skip", "truncate"]
) -> tuple[dict[str, list[int]] | None, str | None]:
    """Token ids and labels of one example, or None and why it was left out."""
    prompt = tokenizer(example.prompt, add_special_tokens=True)["input_ids"]
    answer = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
    answer = [*answer, tokenizer.eos_token_id]
    status = None
    if len(prompt) + len(answer) > max_len:
        room = max_len - len(answer)
        if overlong == "skip":
            return None, "skipped_overlong"
        if room < 1:
            return None, "skipped_answer_too_long"
        head = (
            prompt[:1]
            if tokenizer.bos_token_id is not None and prompt[:1] == [tokenizer.bos_token_id]
            else []
        )
        prompt = head + prompt[len(prompt) - (room - len(head)) :]
        status = "truncated"
    ids = prompt + answer
    labels = [IGNORE_INDEX] * len(prompt) + answer
    return {"input_ids": ids, "labels": labels, "length": len(ids)}, status


def encode_examples(
    examples: Sequence[Example],
    tokenizer: Any,
    max_len: int,
    overlong: Literal["skip", "truncate"],
) -> tuple[list[dict[str, list[int]]], dict[str, int]]:
    """Encode every example; returns the rows and counts (kept, truncated, skipped_*)."""
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

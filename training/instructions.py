"""Instruction data from ParallelRecords: code-style NER and translated instance prediction.

Two tasks, as in KnowCoder-X:

- ``ner``: the class definitions of a sampled schema, the sentence, and the answer
  ``results = [Person("..."), ...]``, for the source and the target side of every pair.
  Schema sampling keeps each gold class with probability ``positive_keep`` and adds
  ``negatives`` classes absent from the sentence, so the model also learns
  ``results = []``. Negatives never include an ancestor or descendant of a gold class
  (a ``Company`` mention is also an ``Organization``: listing both would make the answer
  ambiguous).
- ``alignment`` (the paper's *translated instance prediction*): source sentence + its
  results + target sentence -> target results, in both directions of every pair.

The split is by source instance id, so both sides and both directions of one instance
land on the same side. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict

from parallelner.reasons import Reason
from parallelner.records import Instance, ParallelRecord
from training.config import BuildConfig
from training.errors import TrainingDataError

__all__ = [
    "Example",
    "LabelResolver",
    "split_of",
    "ner_example",
    "alignment_example",
    "examples_for_record",
    "check_records",
]

Task = Literal["ner", "alignment"]


class Example(BaseModel):
    """One instruction example: a prompt, the answer the model must write, and its gold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    task: Task
    split: Literal["train", "dev"]
    instance_id: str
    record_id: str
    dataset: str
    lang: str  # language of the sentence the answer is about
    src_lang: str | None = None  # alignment: language of the given sentence
    classes: tuple[str, ...]  # the schema shown in the prompt
    prompt: str
    completion: str
    gold: tuple[tuple[str, str], ...]  # (class name, mention) in the answer, in order


class LabelResolver:
    """Dataset label -> ontology class name, with the unknown labels collected."""

    def __init__(self) -> None:
        from schemas.label_maps import label_map_for

        self._label_map_for = label_map_for
        self._maps: dict[str, dict[str, str] | None] = {}

    def map_for(self, dataset: str) -> dict[str, str] | None:
        """The dataset's label map, or None when the dataset has none."""
        if dataset not in self._maps:
            try:
                self._maps[dataset] = self._label_map_for(dataset)
            except KeyError:
                self._maps[dataset] = None
        return self._maps[dataset]

    def resolve(self, dataset: str, label: str) -> str | None:
        """Ontology class of ``label`` in ``dataset``; None if unknown."""
        mapping = self.map_for(dataset)
        return None if mapping is None else mapping.get(label)


def split_of(instance_id: str, dev_ratio: float, seed: int) -> Literal["train", "dev"]:
    """Train or dev for one source instance id: a seeded hash, stable across runs."""
    digest = hashlib.sha256(f"{seed}:{instance_id}".encode()).digest()
    return "dev" if int.from_bytes(digest[:8], "big") / 2**64 < dev_ratio else "train"


@cache
def _related(name: str) -> frozenset[str]:
    """The class, its ancestors and its descendants (never a negative for a gold class)."""
    from schemas.ontology import ontology_classes, parent_chain

    out = set(parent_chain(name))
    for other in ontology_classes():
        if name in parent_chain(other):
            out.add(other)
    return frozenset(out)


def _candidate_classes() -> list[str]:
    from schemas.ontology import ontology_classes

    return [c for c in ontology_classes() if c != "Entity"]


def _items(instance: Instance, resolver: LabelResolver, dataset: str) -> list[tuple[str, str]]:
    items = []
    for e in instance.entities:
        cls = resolver.resolve(dataset, e.label)
        if cls is None:  # check_records has already refused such data
            raise TrainingDataError(f"{instance.id}: label {e.label!r} is not in the ontology")
        items.append((cls, e.text))
    return items


def ner_example(
    instance: Instance,
    resolver: LabelResolver,
    cfg: BuildConfig,
    rng: random.Random,
    *,
    record_id: str,
    instance_id: str,
    split: Literal["train", "dev"],
    dataset: str,
    sample: bool = True,
) -> Example:
    """The code-style NER example for one sentence, with a sampled schema.

    ``sample=False`` shows every gold class plus the negatives (used for evaluation).
    """
    from schemas.render import render_prompt, render_results

    items = _items(instance, resolver, dataset)
    gold_classes = list(dict.fromkeys(c for c, _ in items))
    kept = [c for c in gold_classes if not sample or rng.random() < cfg.positive_keep]
    blocked: set[str] = set()
    for c in gold_classes:
        blocked |= _related(c)
    pool = [c for c in _candidate_classes() if c not in blocked]
    room = max(cfg.max_classes - len(kept), 0)
    n_neg = min(cfg.negatives, room, len(pool))
    if not kept and n_neg == 0 and pool:  # a schema is never empty
        n_neg = 1
    negatives = rng.sample(pool, n_neg)
    schema = kept[: cfg.max_classes] + negatives
    rng.shuffle(schema)
    answer = tuple((c, m) for c, m in items if c in schema)
    return Example(
        id=f"{record_id}:ner:{instance.lang}",
        task="ner",
        split=split,
        instance_id=instance_id,
        record_id=record_id,
        dataset=dataset,
        lang=instance.lang,
        classes=tuple(schema),
        prompt=render_prompt(instance.text, schema),
        completion=render_results(list(answer)),
        gold=answer,
    )


def alignment_example(
    given: Instance,
    wanted: Instance,
    resolver: LabelResolver,
    *,
    record_id: str,
    instance_id: str,
    split: Literal["train", "dev"],
    dataset: str,
) -> Example:
    """Translated instance prediction: ``given`` sentence + results + ``wanted`` sentence."""
    from schemas.render import render_alignment_prompt, render_results

    src_items = _items(given, resolver, dataset)
    tgt_items = tuple(_items(wanted, resolver, dataset))
    classes = tuple(dict.fromkeys([c for c, _ in src_items] + [c for c, _ in tgt_items]))
    return Example(
        id=f"{record_id}:alignment:{given.lang}-{wanted.lang}",
        task="alignment",
        split=split,
        instance_id=instance_id,
        record_id=record_id,
        dataset=dataset,
        lang=wanted.lang,
        src_lang=given.lang,
        classes=classes,
        prompt=render_alignment_prompt(given.text, src_items, wanted.text, classes=classes),
        completion=render_results(list(tgt_items)),
        gold=tgt_items,
    )


def _copies(rate: float, rng: random.Random) -> int:
    """How many times an example is used at sampling ``rate`` (2.5 -> 2 or 3)."""
    whole = int(rate)
    return whole + (1 if rng.random() < rate - whole else 0)


def examples_for_record(
    record: ParallelRecord, resolver: LabelResolver, cfg: BuildConfig
) -> Iterator[Example]:
    """Every example of one accepted pair: NER on both sides, alignment both ways.

    The random stream is seeded by the record id, so a record's examples do not depend
    on which other records are in the snapshot. Dev examples are not resampled.
    """
    rng = random.Random(f"{cfg.seed}:{record.record_id}")
    split = split_of(record.instance_id, cfg.dev_ratio, cfg.seed)
    src = record.source_instance()
    tgt = record.target_instance()
    dataset = record.source_dataset
    keys = dict(
        record_id=record.record_id, instance_id=record.instance_id, split=split, dataset=dataset
    )
    sides = [src] if tgt is None else [src, tgt]
    tasks: list[tuple[Task, Example]] = [
        ("ner", ner_example(side, resolver, cfg, rng, **keys)) for side in sides
    ]
    if tgt is not None:
        tasks.append(("alignment", alignment_example(src, tgt, resolver, **keys)))
        tasks.append(("alignment", alignment_example(tgt, src, resolver, **keys)))
    for task, example in tasks:
        n = 1 if split == "dev" else _copies(cfg.mix.get(task, 0.0), rng)
        for i in range(n):
            yield example if i == 0 else example.model_copy(update={"id": f"{example.id}#{i}"})


def check_records(
    records: Iterable[ParallelRecord], resolver: LabelResolver, source: str
) -> dict[str, int]:
    """Refuse data that cannot be trained on, before any work; return counts.

    One pass over ``records`` (the usable ones). Raises TrainingDataError when there are
    none, or when a label (or a dataset) has no class in the ontology: the message lists
    each label with its count.
    """
    n = without_target = 0
    unknown: Counter[str] = Counter()
    for r in records:
        n += 1
        without_target += r.tgt_text is None
        for e in (*r.src_entities, *r.tgt_entities):
            if resolver.resolve(r.source_dataset, e.label) is None:
                unknown[f"{r.source_dataset or '<no dataset>'}:{e.label}"] += 1
    if not n:
        raise TrainingDataError(
            f"{source}: no accepted pairs to train on (statuses accepted / reviewed_accepted)"
        )
    if unknown:
        listed = ", ".join(f"{k} ({c})" for k, c in unknown.most_common())
        raise TrainingDataError(
            f"{source}: labels missing from the ontology [{Reason.UNKNOWN_LABEL.value}]: "
            f"{listed}; add a label map with schemas.label_maps.register_label_map"
        )
    return {"records": n, "without_target": without_target}


def iter_examples(
    records: Iterable[ParallelRecord], resolver: LabelResolver, cfg: BuildConfig
) -> Iterator[Example]:
    """Examples of every record, in record order."""
    for record in records:
        yield from examples_for_record(record, resolver, cfg)

"""The dataset card (README.md) of an export: Hub YAML metadata, then what a reader needs.

The YAML header is what the Hub and ``datasets.load_dataset`` read: licence, languages,
task categories, size category, pretty name, ``configs`` with ``data_files`` per split
(so ``metadata.json`` and the card are never taken for data) and
``dataset_info.features`` (so JSONL loads with the same types as Parquet).

Licences of the source corpora are those of data/NOTICE.md. The export's licence is the
most restrictive of its sources': the union of the Creative Commons restrictions (BY, NC,
SA, ND) of each, and ``unknown`` as soon as one source's licence is not known (nobody
may assume rights that were never stated).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

__all__ = ["SOURCES", "source_of", "combined_licence", "render_card", "size_category"]

# source corpus -> (Hub licence id or None when not stated, credit, BibTeX)
SOURCES: dict[str, tuple[str | None, str, str]] = {
    "wikineural": (
        "cc-by-nc-sa-4.0",
        'Tedeschi, Maiorca, Campagnano, Conia, Navigli, "WikiNEuRal: Combined Neural and '
        'Knowledge-based Silver Data Creation for Multilingual NER", Findings of EMNLP 2021, '
        "github.com/Babelscape/wikineural",
        """@inproceedings{tedeschi-etal-2021-wikineural-combined,
  title = {{W}iki{NE}u{R}al: Combined Neural and Knowledge-based Silver Data Creation for Multilingual {NER}},
  author = {Tedeschi, Simone and Maiorca, Valentino and Campagnano, Niccol{\\`o} and Conia, Simone and Navigli, Roberto},
  booktitle = {Findings of the Association for Computational Linguistics: EMNLP 2021},
  year = {2021}
}""",
    ),
    "cluener": (
        None,
        'Xu et al., "CLUENER2020: Fine-grained Named Entity Recognition Dataset and '
        'Benchmark for Chinese", 2020, github.com/CLUEbenchmark/CLUENER2020',
        """@article{xu2020cluener2020,
  title = {{CLUENER2020}: Fine-grained Named Entity Recognition Dataset and Benchmark for Chinese},
  author = {Xu, Liang and Tong, Yu and Dong, Qianqian and Liao, Yixuan and Yu, Cong and Tian, Yin and Liu, Weitang and Li, Lu and Liu, Caiquan and Zhang, Xuanwei},
  journal = {arXiv preprint arXiv:2001.04351},
  year = {2020}
}""",
    ),
    "europarl": (
        None,
        'Agerri, Chung, Aldabe, Aranberri, Labaka, Rigau, "Building Named Entity '
        'Recognition Taggers via Parallel Corpora", LREC 2018, '
        "github.com/ixa-ehu/ner-evaluation-corpus-europarl",
        """@inproceedings{agerri-etal-2018-building,
  title = {Building Named Entity Recognition Taggers via Parallel Corpora},
  author = {Agerri, Rodrigo and Chung, Yiling and Aldabe, Itziar and Aranberri, Nora and Labaka, Gorka and Rigau, German},
  booktitle = {Proceedings of the Eleventh International Conference on Language Resources and Evaluation (LREC 2018)},
  year = {2018}
}""",
    ),
    "pud": (
        "cc-by-sa-4.0",
        'Mayhew et al., "Universal NER: A Gold-Standard Multilingual Named Entity '
        'Recognition Benchmark", NAACL 2024, github.com/UniversalNER',
        """@inproceedings{mayhew-etal-2024-universal,
  title = {Universal {NER}: A Gold-Standard Multilingual Named Entity Recognition Benchmark},
  author = {Mayhew, Stephen and Blevins, Terra and Liu, Shuheng and others},
  booktitle = {Proceedings of NAACL 2024},
  year = {2024}
}""",
    ),
}
_ALIASES = {"uner": "pud", "universalner": "pud"}

KNOWCODER_X = """@inproceedings{zuo-etal-2025-knowcoder-x,
  title = {{KnowCoder-X}: Boosting Multilingual Information Extraction via Code},
  author = {Zuo, Yuxin and Jiang, Wenxuan and Liu, Wenxuan and Li, Zixuan and Bai, Long and Wang, Hanbin and Zeng, Yutao and Jin, Xiaolong and Guo, Jiafeng and Cheng, Xueqi},
  booktitle = {Proceedings of the 63rd Annual Meeting of the Association for Computational Linguistics (ACL 2025)},
  year = {2025},
  note = {arXiv:2411.04794}
}"""

_CC_ORDER = ("by", "nc", "nd", "sa")


def source_of(source_dataset: str) -> str | None:
    """The corpus key of a ``source_dataset`` value (by substring), or None if unknown."""
    key = source_dataset.lower().replace("_", "").replace("-", "").replace(" ", "")
    for name in (*SOURCES, *_ALIASES):
        if name in key:
            return _ALIASES.get(name, name)
    return None


def _cc(licence: str) -> tuple[frozenset[str], str] | None:
    parts = licence.split("-")
    if len(parts) < 3 or parts[0] != "cc" or not set(parts[1:-1]) <= set(_CC_ORDER):
        return None
    return frozenset(parts[1:-1]), parts[-1]


def combined_licence(licences: list[str | None]) -> str:
    """The most restrictive licence of several sources (Hub licence ids).

    Creative Commons licences combine by the union of their restrictions
    (``cc-by-sa-4.0`` + ``cc-by-nc-sa-4.0`` -> ``cc-by-nc-sa-4.0``); a source with no
    known licence, a non-CC licence, mixed versions or ND with SA give ``unknown``.
    """
    if not licences or any(lic is None for lic in licences):
        return "unknown"
    terms: set[str] = set()
    versions = set()
    for lic in licences:
        parsed = _cc(lic)  # type: ignore[arg-type]
        if parsed is None:
            return "unknown"
        terms |= parsed[0]
        versions.add(parsed[1])
    if len(versions) != 1 or {"nd", "sa"} <= terms:
        return "unknown"
    return "cc-" + "-".join(t for t in _CC_ORDER if t in terms) + "-" + versions.pop()


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` rows."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")]
    bounds += [(1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]
    for bound, name in bounds:
        if n < bound:
            return name
    return "10M<n<100M"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _lang(code: str) -> str:
    return code.split("-")[0].split("_")[0].lower()


# What each column holds (the card's column table). Every exported column is here: a
# test checks the list against export_schema().
COLUMNS: dict[str, str] = {
    "record_id": "unique id of the pair (`<instance>-<tgt_lang>` style)",
    "instance_id": "id of the source sentence; splits are made on it",
    "run_id": "pipeline run (or review pull) that wrote this row",
    "source_dataset": "source corpus of the sentence (licence table below)",
    "src_lang": "source language (BCP-47)",
    "tgt_lang": "target language (BCP-47)",
    "src_text": "source sentence",
    "src_entities": "gold source entities: `start`, `end` (code points, end exclusive), `label`, `text`",
    "tgt_text": "LLM translation (null when the row failed)",
    "mention_translations": "the LLM's translation of each source mention (`id` = source entity index; `context`: the words around a repeated mention that pin its occurrence)",
    "tgt_entities": "projected target entities: span, `label`, `text`, `source_index`, "
    "`method` (exact, fuzzy, repair...), `score` (0..1), and entity verification: "
    "`back_translation`, `roundtrip_score`, `checks` (null: not verified)",
    "unprojected": "source entities with no target span, with `reason`",
    "back_translation": "target translated back into the source language (quality check)",
    "repair_steps": "repair steps taken: the paper's ladder for unplaced mentions "
    "(`a:mention:ok`...) and the closed repair loop's rungs (`ladder:evidence:fixed:0`, "
    "`ladder:fresh:failed`, `ladder:review`)",
    "scores": "quality scores as a list of `{key, value}` (e.g. chrf, projection)",
    "status": "accepted, review, rejected, reviewed_accepted, reviewed_rejected or failed",
    "reasons": "machine-readable reason codes (`parallelner reasons` lists them); after a "
    "review, what the review decided (`review_accepted`, `review_corrected`, `review_*`)",
    "reason_stages": "which stage added each automatic reason (`{key: reason, value: stage}`: "
    "translate, project, backtranslate, assess); null on rows made before stages said so",
    "auto_reasons": "after a review: the automatic stages' reason codes, kept as history "
    "(null: never reviewed)",
    "annotator": "reviewer(s), pseudonymised per export unless stated below",
    "reviewed_at": "time of the human review (UTC)",
    "review_comment": "reviewer's free-text comment",
    "pipeline_version": "ParallelNER code version that wrote the row",
    "prompt_version": "versioned prompt used (e.g. translate.v1)",
    "model": "LLM that translated",
    "config_hash": "hash of every stage setting that changes rows (of `signature`)",
    "signature": "readable provenance: model, prompt, thresholds, code version "
    "(`model:...|prompt:...|v:...`)",
    "created_at": "time the row was written (UTC)",
    "raw_reply": "raw LLM reply where parsing failed (only with --include-raw)",
}


def _label_rows(counts: dict[str, dict[str, int]]) -> list[list[Any]]:
    return [[d, lab, n] for d, c in counts.items() for lab, n in c.items()]


def render_card(meta: dict[str, Any], rows: pa.Table, features: list[dict[str, Any]]) -> str:
    """README.md of an export: YAML header (Hub metadata), then the card text."""
    stats = meta["statistics"]
    splits = meta["splits"]
    sources = sorted(
        v for v in pc.unique(rows.column("source_dataset")).to_pylist() if v is not None
    )
    keys = {s: source_of(s) for s in sources}
    licences = [SOURCES[k][0] if k else None for k in keys.values()]
    licence = combined_licence(licences)
    langs = sorted(
        {_lang(x) for c in ("src_lang", "tgt_lang") for x in pc.unique(rows.column(c)).to_pylist()}
    )
    reviewed = any(s.startswith("reviewed_") for s in stats["by_status"])
    header: dict[str, Any] = {
        "pretty_name": f"ParallelNER {meta['name']}",
        "license": licence,
        "language": langs,
        "multilinguality": ["translation"],
        "task_categories": ["token-classification", "translation"],
        "task_ids": ["named-entity-recognition"],
        "size_categories": [size_category(meta["records"])],
        "annotations_creators": ["machine-generated", *(["expert-generated"] if reviewed else [])],
        "language_creators": ["found", "machine-generated"],
        "source_datasets": ["extended"],
        "tags": ["ner", "parallel-corpus", "span-projection", "knowcoder-x", "parallelner"],
        "configs": [
            {
                "config_name": "default",
                "default": True,
                "data_files": [
                    {"split": s, "path": info["files"]}
                    for s, info in splits.items()
                    if info["files"]
                ],
            }
        ],
        "dataset_info": {
            "features": features,
            "splits": [
                {"name": s, "num_bytes": info["bytes"], "num_examples": info["records"]}
                for s, info in splits.items()
                if info["files"]
            ],
        },
    }
    if not meta["files"]:  # no rows: nothing for `configs` to name
        header.pop("configs")
        header["dataset_info"].pop("splits")
    yaml_text = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=1000)

    statuses = sorted(stats["by_status"])
    by_dir = [
        [d, c["records"], *[c.get(s, 0) for s in statuses]]
        for d, c in stats["by_direction"].items()
    ]
    split_rows = [
        [s, i["records"], i["instances"], ", ".join(i["files"]) or "(none)"]
        for s, i in splits.items()
    ]
    columns = [[f"`{f['name']}`", COLUMNS.get(f["name"], "")] for f in features]
    credits = [
        [
            s or "(not recorded)",
            (SOURCES[k][0] if k else None)
            or "not stated in data/NOTICE.md: check the source before use",
            SOURCES[k][1] if k else "not recorded",
        ]
        for s, k in keys.items()
    ]
    bibtex = "\n\n".join([KNOWCODER_X, *sorted({SOURCES[k][2] for k in keys.values() if k})])
    sig = meta["signature"]
    prov = meta["provenance"]
    thresholds = meta.get("thresholds")
    note = meta.get("release_note") or {}
    privacy = meta["privacy"]
    audited = stats["audited_precision"]
    ext = meta["format"]
    first_split = next(iter(s for s, i in splits.items() if i["files"]), "train")
    return f"""---
{yaml_text}---

# ParallelNER `{meta["name"]}`: span-aligned bilingual NER pairs

Bilingual, span-aligned NER pairs made by ParallelNER, the data engine of KnowCoder-X
(Zuo et al., ACL 2025): annotated sentences are translated by an LLM together with their
entity mentions, the entities are projected onto the translation (with a repair ladder
for mentions not found), and every pair goes through automatic quality checks and, where
doubtful, human review.

- release signature: `{sig}`
- snapshot id: `{meta["snapshot_id"]}`; exported {meta["exported_at"]} with {meta["exported_with"]}
- records: {meta["records"]} (status filter: {", ".join(meta["status_filter"] or ["none, every status"])})
- format: {ext}; acceptance rate of these rows (accepted + reviewed_accepted): {stats["acceptance_rate"]}
- acceptance rate of the whole snapshot: {note.get("statistics", {}).get("acceptance_rate", "not recorded (no release note)")}
- audited precision: {audited if audited is not None else "not known (no audited pairs reviewed)"}
- licence: `{licence}` (the most restrictive of the source corpora, see below)

Rows are never dropped by the pipeline: rejected and failed pairs carry their reasons in
`reasons`; this export holds the statuses of the filter above.

## How to load

```python
from datasets import load_dataset
ds = load_dataset("path/to/this/directory")     # or the Hub repo id after upload
ds["{first_split}"][0]["tgt_entities"]
accepted = ds.filter(lambda r: r["status"] in ("accepted", "reviewed_accepted"))
```

Plain Arrow / pandas work too (`pyarrow.parquet.read_table("data")`), and with ParallelNER
and the store at hand: `parallelner.to_hf_dataset("{meta["name"]}")` (entity labels as
`ClassLabel`). Check the files first: `sha256sum -c SHA256SUMS` or
`parallelner snapshot verify DIR`. Offsets are Python string indices (Unicode code
points), end exclusive: `text[start:end] == entity.text`.

## Splits

Made by source instance id (`instance_id`): a SHA-256 of `seed:instance_id` cut by the
proportions {meta["split_spec"]} (seed {meta["split_seed"]}). Every row of one instance is in
one split, and an instance keeps its split in later exports with the same seed and
proportions. Sizes are proportions of instances in expectation; the actual counts:

{_table(["split", "records", "instances", "files"], split_rows)}

## Statistics

{_table(["direction", "records", *statuses], by_dir) if by_dir else "(no rows)"}

Source entities by label:

{_table(["direction", "label", "entities"], _label_rows(stats["source_labels"]))}

Target (projected) entities by label:

{_table(["direction", "label", "entities"], _label_rows(stats["target_labels"]))}

## Columns

{_table(["column", "what it holds"], columns)}

Types are in the YAML header (`dataset_info.features`); ParallelNER's own schema is
`parallelner.records.arrow_schema()`, of which this is the Hub form: the `scores` map is a
list of `{{key, value}}` (the Hub has no map type).

## Release signature

`{sig}`

- models: {", ".join(prov["models"]) or "-"}
- prompt versions: {", ".join(prov["prompt_versions"]) or "-"}
- pipeline (code) versions: {", ".join(prov["pipeline_versions"]) or "-"}
- configuration hashes: {", ".join(prov["config_hashes"]) or "-"}
- thresholds: {thresholds if thresholds else "not recoverable here: the exporting settings do not reproduce the rows' configuration hash; see the run's settings file"}

## Personal data

- The sentences come from public corpora (Wikipedia, news, parliamentary proceedings)
  and name real people: that is what NER data is. Nothing was added about them.
- `annotator`: {privacy["annotator"]}
- `review_comment`: free text written by reviewers; it is exported as written.
- `reviewed_at`, `created_at`: times of review and of writing (UTC).
- `raw_reply`: {privacy["raw_reply"]}

## Licences and credits of the source corpora

Each source corpus keeps its own licence; it applies to the sentences and their
translations here. The licence in the header is the most restrictive of them
(`unknown` when one is not stated).

{_table(["source_dataset", "licence", "credit"], credits) if credits else "(no rows)"}

## Citation

```bibtex
{bibtex}
```
"""

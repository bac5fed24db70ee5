"""Export a snapshot as plain files a researcher can use without ParallelNER.

Layout of an export directory::

    data/records-00000.parquet   (or .jsonl: one ParallelRecord JSON a line)
    metadata.json                snapshot id, filter, statistics, release note, schema
    README.md                    dataset card: statistics, schema, licences and credits
    SHA256SUMS                   ``sha256sum -c`` format, covers every other file

The export is written to a temporary sibling directory, checked, then renamed into
place: an interrupted export leaves nothing half-written under the target name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from parallelner.errors import StoreError
from parallelner.records import arrow_schema
from parallelner.settings import Settings
from parallelner.store.api import parse_statuses, scan_snapshot
from parallelner.store.table import reading, resolve_snapshot
from parallelner.store.tags import read_release_note, snapshot_stats
from parallelner.version import PIPELINE_VERSION

__all__ = ["export_snapshot", "verify_export", "read_export", "CHECKSUMS", "FORMATS"]

CHECKSUMS = "SHA256SUMS"
FORMATS = ("parquet", "jsonl")
ROWS_PER_FILE = 100_000

# Licences and credits of the source corpora (from data/NOTICE.md), matched on
# ``source_dataset`` by substring.
_CREDITS: dict[str, tuple[str, str]] = {
    "wikineural": (
        "CC BY-NC-SA 4.0 (non-commercial use only)",
        'Tedeschi, Maiorca, Campagnano, Conia, Navigli, "WikiNEuRal: Combined Neural and '
        'Knowledge-based Silver Data Creation for Multilingual NER", Findings of EMNLP 2021, '
        "github.com/Babelscape/wikineural",
    ),
    "cluener": (
        "as published by the CLUENER2020 authors (see their repository)",
        'Xu et al., "CLUENER2020: Fine-grained Named Entity Recognition Dataset and '
        'Benchmark for Chinese", 2020, github.com/CLUEbenchmark/CLUENER2020',
    ),
    "europarl": (
        "as published by the authors (see their repository)",
        'Agerri, Chung, Aldabe, Aranberri, Labaka, Rigau, "Building Named Entity '
        'Recognition Taggers via Parallel Corpora", LREC 2018, '
        "github.com/ixa-ehu/ner-evaluation-corpus-europarl",
    ),
    "pud": (
        "CC BY-SA 4.0",
        'Mayhew et al., "Universal NER: A Gold-Standard Multilingual Named Entity '
        'Recognition Benchmark", NAACL 2024, github.com/UniversalNER',
    ),
}
_CREDITS["uner"] = _CREDITS["universalner"] = _CREDITS["pud"]


def _credit(source: str) -> tuple[str, str]:
    key = source.lower().replace("_", "").replace("-", "").replace(" ", "")
    for name, credit in _CREDITS.items():
        if name in key:
            return credit
    return ("unknown: check the licence of the source corpus before use", "not recorded")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise StoreError(f"{out}: exists and is not a directory; export into a new directory")
    if out.is_dir() and any(out.iterdir()):
        raise StoreError(f"{out}: directory is not empty; export into a new or empty directory")


def export_snapshot(
    name_or_id: str | int,
    out_dir: str | Path,
    *,
    status: str | Iterable[str] | None = None,
    fmt: str = "parquet",
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Export a tag or snapshot to ``out_dir`` (new or empty); return its metadata.

    The written files are verified against their checksums before the directory is
    moved into place.
    """
    if fmt not in FORMATS:
        raise StoreError(f"{fmt}: unknown export format (choose {' or '.join(FORMATS)})")
    statuses = parse_statuses(status)
    out = Path(out_dir)
    _check_target(out)
    with reading(settings) as table:
        snap = resolve_snapshot(table, name_or_id)
        rows = scan_snapshot(table, snap, statuses)
        note = read_release_note(table, str(name_or_id))
    meta = {
        "name": str(name_or_id),
        "snapshot_id": snap.snapshot_id,
        "status_filter": statuses,
        "format": fmt,
        "records": rows.num_rows,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "exported_with": f"parallelner {PIPELINE_VERSION}",
        "statistics": snapshot_stats(rows),
        "release_note": note,
        "schema": [
            {"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in arrow_schema()
        ],
    }
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    except OSError as exc:
        raise StoreError(f"{out}: cannot write the export here ({exc.strerror})") from None
    try:
        files = _write_data(rows, tmp, fmt)
        meta["files"] = files
        (tmp / "metadata.json").write_text(
            json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8"
        )
        (tmp / "README.md").write_text(_card(meta, rows), "utf-8")
        _write_checksums(tmp)
        verify_export(tmp)
        if read_export(tmp, verify=False).num_rows != rows.num_rows:
            raise StoreError(f"{out}: export read back a different number of rows")
        _check_target(out)  # still new or empty: nobody wrote there meanwhile
        tmp.chmod(0o755)  # mkdtemp made it private; an export is meant to be shared
        if out.is_dir():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _write_data(rows: pa.Table, tmp: Path, fmt: str) -> list[str]:
    (tmp / "data").mkdir()
    names = []
    for n, start in enumerate(range(0, max(rows.num_rows, 1), ROWS_PER_FILE)):
        part = rows.slice(start, ROWS_PER_FILE)
        name = f"data/records-{n:05d}.{fmt}"
        if fmt == "parquet":
            pq.write_table(part, tmp / name, compression="zstd")
        else:
            with (tmp / name).open("w", encoding="utf-8") as fh:
                for row in part.to_pylist():
                    fh.write(_json_line(row))
        names.append(name)
    return names


_MAP_COLUMNS = {f.name for f in arrow_schema() if pa.types.is_map(f.type)}


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _json_line(row: dict[str, Any]) -> str:
    """One row as the JSON of its ParallelRecord (maps as objects, times as ISO 8601)."""
    for name in _MAP_COLUMNS:
        row[name] = dict(row[name] or ())
    return json.dumps(row, ensure_ascii=False, default=_json_default) + "\n"


def _write_checksums(root: Path) -> None:
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != CHECKSUMS):
        lines.append(f"{_sha256(path)}  {path.relative_to(root).as_posix()}\n")
    (root / CHECKSUMS).write_text("".join(lines), "utf-8")


def verify_export(directory: str | Path) -> dict[str, Any]:
    """Check every file of an export against SHA256SUMS; raise StoreError naming each fault.

    Faults: a missing checksum file, a malformed line in it, a listed file that is
    missing or whose content changed, and a data file that is not listed.
    """
    root = Path(directory)
    sums = root / CHECKSUMS
    if not root.is_dir():
        raise StoreError(f"{root}: no such export directory")
    if not sums.is_file():
        raise StoreError(f"{sums}: checksum file missing; this is not a ParallelNER export")
    faults: list[str] = []
    listed: set[str] = set()
    for lineno, line in enumerate(sums.read_text("utf-8").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name or name.startswith("/") or ".." in name:
            faults.append(f"{sums}:{lineno}: malformed checksum line")
            continue
        listed.add(name)
        path = root / name
        if not path.is_file():
            faults.append(f"{path}: missing")
        elif _sha256(path) != digest:
            faults.append(f"{path}: content changed (SHA-256 does not match {CHECKSUMS})")
    data_dir = root / "data"
    if data_dir.is_dir():
        for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
            if path.relative_to(root).as_posix() not in listed:
                faults.append(f"{path}: data file not listed in {CHECKSUMS}")
    if faults:
        raise StoreError(f"{root}: export failed verification: " + "; ".join(faults))
    return {"directory": str(root), "files": len(listed), "ok": True}


def read_export(directory: str | Path, *, verify: bool = True) -> pa.Table:
    """Read an export's rows back as a pyarrow Table with the record schema.

    ``verify`` (default) first checks every file against SHA256SUMS (``verify_export``),
    so a tampered or missing data file is a StoreError naming it, never a wrong table.
    """
    root = Path(directory)
    if verify:
        verify_export(root)
    try:
        meta = json.loads((root / "metadata.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"{root / 'metadata.json'}: not a readable export metadata file ({exc})"
        ) from None
    parts = []
    for name in meta["files"]:
        if meta["format"] == "parquet":
            parts.append(pq.read_table(root / name).cast(arrow_schema()))
        else:
            from parallelner.records import ParallelRecord, records_to_table

            with (root / name).open(encoding="utf-8") as fh:
                parts.append(
                    records_to_table(
                        ParallelRecord.model_validate_json(line) for line in fh if line.strip()
                    )
                )
    return pa.concat_tables(parts) if parts else arrow_schema().empty_table()


def _table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _card(meta: dict[str, Any], rows: pa.Table) -> str:
    stats = meta["statistics"]
    statuses = sorted(stats["by_status"])
    by_dir = [
        [d, c["records"], *[c.get(s, 0) for s in statuses]]
        for d, c in stats["by_direction"].items()
    ]
    labels = [[d, lab, n] for d, c in stats["source_labels"].items() for lab, n in c.items()]
    sources = sorted({s for s in rows.column("source_dataset").to_pylist()})
    credits = [[s or "(not recorded)", *_credit(s)] for s in sources]
    schema = [
        [f["name"], f"`{f['type']}`", "yes" if f["nullable"] else "no"] for f in meta["schema"]
    ]
    note = meta["release_note"] or {}
    prov = note.get("provenance", {})
    audited = stats["audited_precision"]
    ext = meta["format"]
    return f"""# ParallelNER dataset: `{meta["name"]}`

Bilingual, span-aligned NER pairs produced by ParallelNER (LLM translation of annotated
sentences, entity span projection, automatic and human quality filtering).

- snapshot id: `{meta["snapshot_id"]}`
- records in this export: {meta["records"]} (status filter: {", ".join(meta["status_filter"] or ["none, all statuses"])})
- format: {ext}; exported {meta["exported_at"]} with {meta["exported_with"]}
- acceptance rate (accepted + reviewed_accepted, over the exported rows): {stats["acceptance_rate"]}
- acceptance rate of the whole snapshot: {note.get("statistics", {}).get("acceptance_rate", "see `parallelner snapshot show`")}
- audited precision: {audited if audited is not None else "not known (no audited pairs reviewed)"}

Rows are never dropped by the pipeline: rejected and failed pairs carry their reasons in
`reasons`; this export contains the statuses given by the filter above.

## Statistics

{_table(["direction", "records", *statuses], by_dir) if by_dir else "(no rows)"}

Source-side entities by label:

{_table(["direction", "label", "entities"], labels) if labels else "(no entities)"}

## How to load

```python
import pyarrow.parquet as pq                      # Parquet export
table = pq.read_table("data")                      # or pandas.read_parquet("data")
# JSONL export: one ParallelRecord per line
# from parallelner.records import ParallelRecord
# records = [ParallelRecord.model_validate_json(l) for l in open("data/records-00000.jsonl")]
# with ParallelNER and the store at hand:
# import parallelner; table = parallelner.load_snapshot("{meta["name"]}")
```

Check the files first: `sha256sum -c SHA256SUMS` or `parallelner snapshot verify DIR`.
Offsets are Python string indices (Unicode code points), end exclusive:
`text[start:end] == entity.text`.

## Schema

{_table(["field", "Arrow type", "nullable"], schema)}

## Provenance

- prompt versions: {", ".join(prov.get("prompt_versions", [])) or "see rows (prompt_version)"}
- models: {", ".join(prov.get("models", [])) or "see rows (model)"}
- pipeline versions: {", ".join(prov.get("pipeline_versions", [])) or "see rows (pipeline_version)"}
- configuration hashes: {", ".join(prov.get("config_hashes", [])) or "see rows (config_hash)"}

## Licences and credits of the source corpora

Each source corpus keeps its own licence; it applies to the sentences and their
translations in this dataset.

{_table(["source_dataset", "licence", "credit"], credits) if credits else "(no rows)"}
"""

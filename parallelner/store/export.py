"""Export a snapshot as plain files a researcher can use without ParallelNER.

Layout of an export directory (what ``datasets.load_dataset(DIR)`` and the Hub read)::

    data/train-00000-of-00001.parquet       (or .jsonl; one file set per split:
    data/validation-00000-of-00001.parquet   train / validation / test, by source
    data/test-00000-of-00001.parquet         instance id; an empty split has no file)
    README.md      dataset card: Hub YAML (licence, languages, configs/data_files per
                   split, features), columns, statistics, signature, personal data, credits
    metadata.json  snapshot id, filter, splits, statistics, release note, schema
    SHA256SUMS     ``sha256sum -c`` format, covers every other file

Rows have ``parallelner.store.hub.export_schema()``: the record schema with the
``scores`` map as a list of ``{key, value}`` (no Arrow map type anywhere), annotators
pseudonymised and ``raw_reply`` left out by default. ``read_export`` turns them back
into record rows.

The export is written to a temporary sibling directory, checked, then renamed into
place: an interrupted export leaves nothing half-written under the target name. An empty
mount point as the target (which cannot be renamed over) gets the temporary directory
inside it, and its files are renamed into place one by one once checked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as paj
import pyarrow.parquet as pq

from parallelner.errors import StoreError
from parallelner.records import arrow_schema
from parallelner.settings import Settings, load_settings
from parallelner.store.card import render_card
from parallelner.store.hub import (
    DEFAULT_SEED,
    PRIVATE_COLUMNS,
    export_schema,
    from_export_table,
    hf_features_yaml,
    parse_splits,
    split_rows,
    to_export_table,
)
from parallelner.store.read import parse_statuses, scan_snapshot
from parallelner.store.table import reading, resolve_snapshot
from parallelner.store.tags import read_release_note, snapshot_stats
from parallelner.version import PIPELINE_VERSION
from parallelner.writers.atomic import atomic_path, file_in_the_way

__all__ = ["export_snapshot", "verify_export", "read_export", "CHECKSUMS", "FORMATS"]

CHECKSUMS = "SHA256SUMS"
FORMATS = ("parquet", "jsonl")
ROWS_PER_FILE = 100_000


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_target(out: Path, building: Path | None = None) -> None:
    """Refuse a target that is a file, is below one, or is a folder with something in it
    (other than ``building``, the export's temporary folder when it is made inside)."""
    blocker = file_in_the_way(out)
    if blocker == out:
        raise StoreError(f"{out}: exists and is not a directory; export into a new directory")
    if blocker is not None:
        raise StoreError(
            f"{out}: cannot export here: {blocker} is a file, not a folder; choose a path "
            "below a folder (or remove or rename that file)"
        )
    if out.is_dir() and any(p != building for p in out.iterdir()):
        raise StoreError(f"{out}: directory is not empty; export into a new or empty directory")


def export_snapshot(
    name_or_id: str | int,
    out_dir: str | Path,
    *,
    status: str | Iterable[str] | None = None,
    fmt: str = "parquet",
    splits: str | Mapping[str, float] | None = None,
    seed: int = DEFAULT_SEED,
    include_raw: bool = False,
    pseudonymise: bool = True,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Export a tag or snapshot to ``out_dir`` (new or empty); return its metadata.

    The layout is the one ``datasets.load_dataset(out_dir)`` and the Hub read as is:
    splits by source instance id (``splits``, ``seed``: see ``parallelner.store.hub``),
    one file set per split under ``data/``, the card's ``configs`` naming them. Annotators
    are pseudonymised and raw LLM replies left out unless ``pseudonymise=False`` /
    ``include_raw=True``. The written files are verified against their checksums before
    the directory is moved into place.
    """
    if fmt not in FORMATS:
        raise StoreError(f"{fmt}: unknown export format (choose {' or '.join(FORMATS)})")
    statuses = parse_statuses(status)
    proportions = parse_splits(splits)
    out = Path(out_dir)
    _check_target(out)
    settings = settings if settings is not None else load_settings()
    with reading(settings) as table:
        snap = resolve_snapshot(table, name_or_id)
        rows = scan_snapshot(table, snap, statuses)
        note = read_release_note(table, str(name_or_id))
    schema = export_schema(include_raw)
    spec = ",".join(f"{k}={v:g}" for k, v in proportions.items())
    prov = {
        key: sorted(v for v in pc.unique(rows.column(col)).to_pylist() if v is not None)
        for key, col in (
            ("models", "model"),
            ("prompt_versions", "prompt_version"),
            ("pipeline_versions", "pipeline_version"),
            ("config_hashes", "config_hash"),
            ("source_datasets", "source_dataset"),
        )
    }
    meta: dict[str, Any] = {
        "name": str(name_or_id),
        "snapshot_id": snap.snapshot_id,
        "status_filter": statuses,
        "format": fmt,
        "records": rows.num_rows,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "exported_with": f"parallelner {PIPELINE_VERSION}",
        "statistics": snapshot_stats(rows),
        "release_note": note,
        "provenance": prov,
        "thresholds": _thresholds(rows, settings),
        "split_spec": spec,
        "split_seed": seed,
        "signature": "|".join(
            [
                f"name:{name_or_id}",
                f"snapshot:{snap.snapshot_id}",
                f"status:{'+'.join(statuses) if statuses else 'all'}",
                f"models:{'+'.join(prov['models']) or '-'}",
                f"prompts:{'+'.join(prov['prompt_versions']) or '-'}",
                f"config:{'+'.join(prov['config_hashes']) or '-'}",
                f"code:{'+'.join(prov['pipeline_versions']) or '-'}",
                f"split:{spec},seed={seed}",
                f"export:{PIPELINE_VERSION}",
            ]
        ),
        "privacy": {
            "annotator": (
                "pseudonymised: `annotator-<10 hex>` per person, HMAC-SHA-256 under a key "
                "drawn for this export and not kept (same person, same pseudonym within "
                "this export; not linkable to other exports)"
                if pseudonymise
                else "identities as recorded by the review tool (e-mail addresses or user "
                "names): this export was made with --keep-annotators"
            ),
            "raw_reply": (
                "included (--include-raw): raw LLM replies of the rows whose reply could "
                "not be parsed"
                if include_raw
                else "left out of this export (made without --include-raw)"
            ),
        },
        "omitted_columns": [] if include_raw else list(PRIVATE_COLUMNS),
        "schema": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema],
    }
    exported = to_export_table(rows, include_raw=include_raw, pseudonymise=pseudonymise)
    parts = split_rows(exported, proportions, seed)
    with atomic_path(out, directory=True, error=StoreError, what="the export") as tmp:
        (tmp / "data").mkdir()
        meta["splits"] = {
            s: {
                "files": _write_data(part, tmp, fmt, s),
                "records": part.num_rows,
                "instances": len(pc.unique(part.column("instance_id"))),
                "bytes": part.nbytes,
            }
            for s, part in parts.items()
        }
        meta["files"] = [f for info in meta["splits"].values() for f in info["files"]]
        (tmp / "metadata.json").write_text(
            json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8"
        )
        (tmp / "README.md").write_text(render_card(meta, rows, hf_features_yaml(schema)), "utf-8")
        _write_checksums(tmp)
        verify_export(tmp)
        if read_export(tmp, verify=False).num_rows != rows.num_rows:
            raise StoreError(f"{out}: export read back a different number of rows")
        _check_target(out, tmp)  # still new or empty: nobody wrote there meanwhile
        tmp.chmod(0o755)  # mkdtemp made it private; an export is meant to be shared
    return meta


def _thresholds(rows: pa.Table, settings: Settings) -> dict[str, Any] | None:
    """The stage settings behind the rows, when the exporting settings reproduce every
    row's configuration hash (records carry only the hash); None otherwise."""
    from parallelner.version import stage_config_hash

    hashes = set(pc.unique(rows.column("config_hash")).to_pylist())
    langs = set(pc.unique(rows.column("tgt_lang")).to_pylist())
    if not hashes:
        return None
    try:
        ours = {stage_config_hash(settings, lang) for lang in langs}
    except Exception:  # noqa: BLE001 - a settings object that cannot hash: not known
        return None
    if not hashes <= ours:
        return None
    return {
        "fuzzy_threshold": settings.project.fuzzy_threshold,
        **{
            k: v
            for k, v in settings.quality.model_dump().items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        },
    }


def _write_data(rows: pa.Table, tmp: Path, fmt: str, split: str) -> list[str]:
    """Write one split's rows as ``data/<split>-NNNNN-of-NNNNN.<fmt>``; none if empty."""
    if rows.num_rows == 0:
        return []
    n_files = -(-rows.num_rows // ROWS_PER_FILE)
    names = []
    for n in range(n_files):
        part = rows.slice(n * ROWS_PER_FILE, ROWS_PER_FILE)
        name = f"data/{split}-{n:05d}-of-{n_files:05d}.{fmt}"
        if fmt == "parquet":
            pq.write_table(part, tmp / name, compression="zstd")
        else:
            with (tmp / name).open("w", encoding="utf-8") as fh:
                for row in part.to_pylist():
                    fh.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
        names.append(name)
    return names


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


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
    schema = export_schema("raw_reply" not in meta.get("omitted_columns", []))
    parts = []
    for name in meta["files"]:
        path = root / name
        if meta["format"] == "parquet":
            part = pq.read_table(path)
        else:
            try:
                part = paj.read_json(
                    path,
                    parse_options=paj.ParseOptions(
                        explicit_schema=schema, unexpected_field_behavior="error"
                    ),
                )
            except pa.ArrowInvalid as exc:
                raise StoreError(f"{path}: not an export's JSONL ({exc})") from None
        parts.append(from_export_table(part))
    if not parts:
        return arrow_schema().empty_table()
    return pa.concat_tables(parts).sort_by("record_id")

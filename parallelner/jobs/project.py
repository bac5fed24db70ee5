"""Projection job files (``parallelner project``): JSONL lines in, one JSONL line out each.

File I/O around stage 2 for jobs given as files (not Prefect tasks).

Input line: ``{"id", "source": {"lang", "text", "entities": [{"start", "end",
"label"}]}, "target": {"lang", "text"}}`` plus any extra keys, carried through. Output:
the same object with ``target.entities`` (``start, end, label, text, score, method,
source_index``), ``unprojected`` (``source_index, label, text, reason``), ``reasons``
(every code on the line, sorted) and, with an LLM, ``mentions`` and ``repair_steps``.
``source_index`` is the entity's position in the input line's ``source.entities``.

A bad line never stops the file: it gets its reasons in the output (one line out per
line in), or, with ``strict``, the first one becomes an ``InputError`` (``file:line``).
Layers: ``parse_line`` / ``render_line`` (pure, one line), ``project_line`` (sync,
string matching), ``project_line_llm`` (async, mentions + repair), ``run_project`` (I/O).

``--commit`` (``commit_projected``) keeps the pairs as dataset rows: each output line
without input faults becomes a draft ``ParallelRecord`` (``record_from_line``, pure; the
human translation is the target, ``model`` "human"), the automatic quality checks of
stage 3 route it (``quality.assess_stream``, the same settings as a run), and the rows are
committed as one snapshot with a quality report. Checks that read an LLM's
back-translation have nothing to read here and say nothing: a human translation is not
back-translated. The run id hashes the input file and the signature, so the same command
again commits nothing new and names the snapshot that has its rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parallelner.align.cascade import Projection, project_spans
from parallelner.errors import InputError
from parallelner.reasons import Reason, Status
from parallelner.records import (
    Entity,
    Instance,
    MentionTranslation,
    ParallelRecord,
    ProjectedEntity,
    UnprojectedEntity,
)
from parallelner.settings import Settings
from parallelner.version import PIPELINE_VERSION, signature, signature_hash
from parallelner.writers.atomic import AtomicTextWriter

__all__ = [
    "ParsedLine",
    "ProjectSummary",
    "known_labels",
    "parse_line",
    "render_line",
    "project_line",
    "project_line_llm",
    "run_project",
    "INPUT_FAULTS",
    "CommitSummary",
    "project_signature",
    "record_from_line",
    "commit_projected",
]

# Reasons that mean the input line itself is at fault (raised under --strict).
INPUT_FAULTS = frozenset(
    {
        Reason.INVALID_JSON,
        Reason.INVALID_UTF8,
        Reason.MALFORMED_LINE,
        Reason.INVALID_SOURCE_ENTITY,
        Reason.UNKNOWN_LABEL,
        Reason.EMPTY_TARGET,
        Reason.UNEXPECTED_SCRIPT,
        Reason.MENTION_TOO_LONG,
    }
)


def known_labels() -> frozenset[str]:
    """Every dataset label of every label map in ``schemas.label_maps``."""
    from schemas.label_maps import known_datasets, label_map_for

    return frozenset(label for ds in known_datasets() for label in label_map_for(ds))


@dataclass
class ParsedLine:
    """One input line, checked: the valid part as an Instance, the faults as reasons."""

    line: int
    obj: dict[str, Any] | None  # None when the line is not a JSON object
    raw: str
    fault: tuple[Reason, str] | None = None  # the whole line is unusable
    source: Instance | None = None  # valid entities only, sorted
    order: tuple[int, ...] = ()  # sorted entity index -> input index
    bad_entities: list[dict[str, Any]] = field(default_factory=list)  # unprojected rows
    tgt_text: str = ""
    tgt_lang: str = ""

    def faults(self) -> list[tuple[Reason, str]]:
        """Input faults of this line, the line-level one first."""
        out = [self.fault] if self.fault else []
        out += [(Reason(b["reason"]), b["detail"]) for b in self.bad_entities]
        return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_line(raw: str, line: int, labels: frozenset[str] | None = None) -> ParsedLine:
    """Check one input line; never raises."""
    if not raw.strip():
        return ParsedLine(line, None, raw, (Reason.MALFORMED_LINE, "blank line"))
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        return ParsedLine(line, None, raw, (Reason.INVALID_JSON, f"not valid JSON ({exc.msg})"))
    if not isinstance(obj, dict):
        return ParsedLine(line, None, raw, (Reason.INVALID_JSON, "not a JSON object"))
    p = ParsedLine(line, obj, raw)
    src, tgt = obj.get("source"), obj.get("target")
    problem = None
    if not isinstance(src, dict) or not isinstance(tgt, dict):
        problem = "needs objects 'source' and 'target'"
    elif not isinstance(src.get("text"), str) or not isinstance(src.get("lang"), str):
        problem = "source needs string 'lang' and 'text'"
    elif not isinstance(src.get("entities", []), list):
        problem = "source.entities must be a list"
    elif not isinstance(tgt.get("text"), str) or not isinstance(tgt.get("lang"), str):
        problem = "target needs string 'lang' and 'text'"
    if problem:
        p.fault = (Reason.MALFORMED_LINE, problem)
        return p
    text = src["text"]
    good: list[tuple[Entity, int]] = []
    for k, ent in enumerate(src.get("entities", [])):
        reason, detail, etext, label = None, "", "", ""
        if not isinstance(ent, dict):
            reason, detail = Reason.INVALID_SOURCE_ENTITY, f"entity {k} is not an object"
        else:
            s, e, label = ent.get("start"), ent.get("end"), ent.get("label")
            etext = ent.get("text") if isinstance(ent.get("text"), str) else ""
            if not (_is_int(s) and _is_int(e)) or not isinstance(label, str):
                reason, detail = (
                    Reason.INVALID_SOURCE_ENTITY,
                    f"entity {k} needs integer 'start', 'end' and a string 'label'",
                )
                label = label if isinstance(label, str) else ""
            elif not 0 <= s < e <= len(text):
                reason, detail = (
                    Reason.INVALID_SOURCE_ENTITY,
                    f"entity {k} [{s}, {e}) is not a span of the source text (length {len(text)})",
                )
            elif "text" in ent and ent["text"] != text[s:e]:
                reason, detail = (
                    Reason.INVALID_SOURCE_ENTITY,
                    f"entity {k} [{s}, {e}) reads {text[s:e]!r}, not {ent['text']!r}",
                )
            elif labels is not None and label not in labels:
                etext = text[s:e]
                reason, detail = Reason.UNKNOWN_LABEL, f"entity {k} has unknown label {label!r}"
            else:
                good.append((Entity(start=s, end=e, label=label, text=text[s:e]), k))
        if reason is not None:
            p.bad_entities.append(
                {"source_index": k, "label": label, "text": etext, "reason": reason.value,
                 "detail": detail}
            )  # fmt: skip
    good.sort(key=lambda ek: (ek[0].start, ek[0].end, ek[0].label))
    p.source = Instance(
        id=str(obj.get("id", f"line-{line}")),
        lang=src["lang"],
        text=text,
        entities=tuple(e for e, _ in good),
    )
    p.order = tuple(k for _, k in good)
    p.tgt_text, p.tgt_lang = tgt["text"], tgt["lang"]
    return p


def render_line(
    p: ParsedLine,
    projection: Projection | None,
    *,
    tgt_text: str | None = None,
    mentions: Mapping[int, str] | None = None,
    steps: tuple[str, ...] | None = None,
    needs_review: bool | None = None,
) -> dict[str, Any]:
    """The output object of one line (input keys carried through)."""
    if p.obj is None or p.fault is not None:
        reason, detail = p.fault or (Reason.MALFORMED_LINE, "")
        base = dict(p.obj) if p.obj is not None else {"raw": p.raw}
        base.update({"line": p.line, "unprojected": [], "reasons": [reason.value], "error": detail})
        return base
    assert p.source is not None
    out = dict(p.obj)
    target = dict(out["target"])
    if tgt_text is not None and tgt_text != p.tgt_text:
        target["original_text"] = p.tgt_text
        target["text"] = tgt_text
    proj = projection or Projection((), ())
    target["entities"] = [
        {
            "start": e.start,
            "end": e.end,
            "label": e.label,
            "text": e.text,
            "score": e.score,
            "method": e.method,
            "source_index": p.order[e.source_index],
        }
        for e in proj.entities
    ]
    out["target"] = target
    unprojected = [
        {
            "source_index": p.order[u.source_index],
            "label": u.label,
            "text": u.text,
            "reason": u.reason.value,
        }
        for u in proj.unprojected
    ]
    unprojected += [{k: v for k, v in b.items()} for b in p.bad_entities]
    unprojected.sort(key=lambda u: u["source_index"])
    out["unprojected"] = unprojected
    reasons = {u["reason"] for u in unprojected}
    if proj.ambiguous:
        out["ambiguous"] = sorted(p.order[i] for i in proj.ambiguous)
        reasons.add(Reason.AMBIGUOUS.value)
    out["reasons"] = sorted(reasons)
    if mentions is not None:
        out["mentions"] = {str(p.order[i]): m for i, m in sorted(mentions.items())}
    if steps is not None:
        out["repair_steps"] = list(steps)
    if needs_review is not None:
        out["needs_review"] = needs_review
    return out


def project_line(
    raw: str, line: int, *, threshold: float = 0.8, labels: frozenset[str] | None = None
) -> tuple[ParsedLine, dict[str, Any]]:
    """Parse, project by string matching only (``--llm none``) and render one line."""
    p = parse_line(raw, line, labels)
    if p.fault is not None:
        return p, render_line(p, None)
    assert p.source is not None
    proj = project_spans(p.source, p.tgt_text, p.tgt_lang, None, threshold=threshold)
    return p, render_line(p, proj)


async def project_line_llm(
    client: Any,
    raw: str,
    line: int,
    *,
    threshold: float = 0.8,
    labels: frozenset[str] | None = None,
    fallback_model: str | None = None,
    repair: bool = True,
) -> tuple[ParsedLine, dict[str, Any]]:
    """Translate the mentions in context, project, and repair with rungs (a) and (c).

    The human translation is never rewritten: rung (b) is off here.
    """
    from parallelner.stages.repair import repair_projection, translate_mentions

    p = parse_line(raw, line, labels)
    if p.fault is not None:
        return p, render_line(p, None)
    assert p.source is not None
    proj0 = project_spans(p.source, p.tgt_text, p.tgt_lang, None, threshold=threshold)
    if proj0.unprojected and proj0.unprojected[0].reason in (
        Reason.EMPTY_TARGET,
        Reason.UNEXPECTED_SCRIPT,
    ):
        return p, render_line(p, proj0, mentions={}, steps=(), needs_review=False)
    mentions = await translate_mentions(client, p.source, p.tgt_lang, tgt_text=p.tgt_text)
    proj = project_spans(p.source, p.tgt_text, p.tgt_lang, mentions, threshold=threshold)
    steps: tuple[str, ...] = ()
    needs_review = False
    if repair and proj.unprojected:
        rep = await repair_projection(
            client, p.source, p.tgt_text, p.tgt_lang, mentions, proj,
            threshold=threshold, fallback_model=fallback_model, allow_rewrite=False,
        )  # fmt: skip
        proj, steps, needs_review = rep.projection, rep.steps, rep.needs_review
    return p, render_line(p, proj, mentions=mentions, steps=steps, needs_review=needs_review)


@dataclass
class ProjectSummary:
    """Counts of one ``parallelner project`` run."""

    lines: int = 0
    complete: int = 0  # every source entity placed
    entities: int = 0
    faulty_lines: int = 0
    methods: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)  # unprojected entities + line faults
    repair_steps: Counter = field(default_factory=Counter)

    def add(self, p: ParsedLine, out: dict[str, Any]) -> None:
        """Count one rendered line."""
        self.lines += 1
        if p.fault is not None:
            self.faulty_lines += 1
            self.reasons[p.fault[0].value] += 1
            return
        if p.bad_entities:
            self.faulty_lines += 1
        ents = out["target"]["entities"]
        self.entities += len(ents) + len(out["unprojected"])
        self.methods.update(e["method"] for e in ents)
        self.reasons.update(u["reason"] for u in out["unprojected"])
        if "ambiguous" in out:
            self.reasons[Reason.AMBIGUOUS.value] += len(out["ambiguous"])
        self.repair_steps.update(out.get("repair_steps", ()))
        if not out["unprojected"]:
            self.complete += 1

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "lines": self.lines,
            "complete": self.complete,
            "faulty_lines": self.faulty_lines,
            "entities": self.entities,
            "methods": dict(self.methods.most_common()),
            "reasons": dict(self.reasons.most_common()),
            "repair_steps": dict(self.repair_steps.most_common()),
        }


def _read_lines(path: Path) -> Iterable[tuple[int, str, bool]]:
    """(line number, text, valid UTF-8) for every line of the file."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise InputError(path, None, Reason.MALFORMED_LINE, "file not found") from None
    except OSError as exc:
        raise InputError(
            path, None, Reason.MALFORMED_LINE, f"cannot read ({exc.strerror})"
        ) from None
    with fh:
        for n, blob in enumerate(fh, 1):
            blob = blob.rstrip(b"\r\n")
            try:
                yield n, blob.decode("utf-8"), True
            except UnicodeDecodeError:
                yield n, blob.decode("utf-8", errors="replace"), False


def _check_strict(path: Path, p: ParsedLine, out: dict[str, Any]) -> None:
    for reason, detail in p.faults():
        raise InputError(path, p.line, reason, detail)
    for u in out.get("unprojected", ()):
        r = Reason(u["reason"])
        if r in INPUT_FAULTS:
            raise InputError(
                path,
                p.line,
                r,
                f"entity {u['source_index']} {u['text']!r}: {r.value.replace('_', ' ')}",
            )


def run_project(
    input_path: Path,
    output_path: Path,
    *,
    threshold: float = 0.8,
    strict: bool = False,
    labels: frozenset[str] | None = None,
    llm: Settings | None = None,
    repair: bool = True,
    batch: int = 256,
) -> ProjectSummary:
    """Project every line of ``input_path`` into ``output_path`` (written atomically).

    ``llm`` None means string matching only; otherwise the settings of the LLM client
    that translates the mentions and runs repair rungs (a) and (c).
    """
    input_path, output_path = Path(input_path), Path(output_path)
    summary = ProjectSummary()
    lines = _read_lines(input_path)
    with AtomicTextWriter(output_path) as writer:

        def emit(res: tuple[ParsedLine, dict[str, Any]]) -> None:
            p, out = res
            if strict:
                _check_strict(input_path, p, out)
            summary.add(p, out)
            writer.write_line(json.dumps(out, ensure_ascii=False))

        if llm is None:
            for n, text, ok in lines:
                emit(project_line(text, n, threshold=threshold, labels=labels)
                     if ok else _bad_utf8(n, text))  # fmt: skip
        else:
            asyncio.run(_project_llm(lines, emit, llm, threshold, labels, repair, batch))
    return summary


def _bad_utf8(n: int, text: str) -> tuple[ParsedLine, dict[str, Any]]:
    p = ParsedLine(n, None, text, (Reason.INVALID_UTF8, "line is not valid UTF-8"))
    return p, render_line(p, None)


async def _project_llm(
    lines: Iterable[tuple[int, str, bool]],
    emit: Any,
    settings: Settings,
    threshold: float,
    labels: frozenset[str] | None,
    repair: bool,
    batch: int,
) -> None:
    """Lines through the LLM path, ``batch`` at a time concurrently, output in order."""
    from parallelner.llm.client import LLMClient

    async with LLMClient.from_settings(settings, wait_out_outages=True) as client:

        async def one(n: int, text: str, ok: bool) -> tuple[ParsedLine, dict[str, Any]]:
            if not ok:
                return _bad_utf8(n, text)
            return await project_line_llm(
                client, text, n, threshold=threshold, labels=labels,
                fallback_model=settings.llm_fallback_model, repair=repair,
            )  # fmt: skip

        pending: list[tuple[int, str, bool]] = []
        for item in lines:
            pending.append(item)
            if len(pending) >= batch:
                for res in await asyncio.gather(*(one(*i) for i in pending)):
                    emit(res)
                pending = []
        for res in await asyncio.gather(*(one(*i) for i in pending)):
            emit(res)


# --- keeping projected pairs as dataset rows (``parallelner project --commit``) ----------


def project_signature(settings: Settings, dataset: str, llm: bool) -> str:
    """The readable provenance of committed projection rows, as ``run_signature`` is of a
    run's: human translation, LLM help or none, fuzzy threshold, the quality settings."""
    return signature(
        translation="human",
        llm=settings.llm_model if llm else "none",
        dataset=dataset,
        fuzzy=f"{settings.project.fuzzy_threshold:g}",
        repair="yes" if llm and settings.project.repair else "no",
        min_chrf=f"{settings.quality.min_chrf:g}",
        stages=settings.stage_hash("project", "quality")[:8],
        v=PIPELINE_VERSION,
    )


def record_from_line(
    out: dict[str, Any],
    *,
    run_id: str,
    dataset: str,
    config_hash: str,
    sig: str,
    prompt_version: str = "none",
) -> ParallelRecord | None:
    """The draft record (status ``review`` until assessed) of one rendered output line;
    None for a line with an input fault (its reasons stay in the output file).

    The source entities are sorted as ``parse_line`` sorts them, and every index of the
    line (input order) is mapped onto that order.
    """
    from parallelner.stages.chain import record_id_for

    if "error" in out or any(Reason(r) in INPUT_FAULTS for r in out.get("reasons", ())):
        return None
    src, tgt = out["source"], out["target"]
    text = src["text"]
    ents = [
        Entity(start=e["start"], end=e["end"], label=e["label"], text=text[e["start"] : e["end"]])
        for e in src.get("entities", [])
    ]
    order = sorted(range(len(ents)), key=lambda k: (ents[k].start, ents[k].end, ents[k].label))
    pos = {k: i for i, k in enumerate(order)}
    line_id = str(out.get("id", out.get("line", "")))
    instance_id = str(src.get("id") or line_id)  # one English sentence, several targets
    return ParallelRecord(
        record_id=record_id_for(line_id, tgt["lang"], config_hash),
        instance_id=instance_id,
        run_id=run_id,
        source_dataset=dataset,
        src_lang=src["lang"],
        tgt_lang=tgt["lang"],
        src_text=src["text"],
        src_entities=tuple(ents[k] for k in order),
        tgt_text=tgt["text"],
        mention_translations=tuple(
            MentionTranslation(id=pos[int(k)], source=ents[int(k)].text, target=m)
            for k, m in out.get("mentions", {}).items()
        ),
        tgt_entities=tuple(
            ProjectedEntity(
                start=e["start"],
                end=e["end"],
                label=e["label"],
                text=e["text"],
                source_index=pos[e["source_index"]],
                method=e["method"],
                score=e["score"],
            )
            for e in tgt.get("entities", [])
        ),
        unprojected=tuple(
            UnprojectedEntity(
                source_index=pos[u["source_index"]],
                label=u["label"],
                text=u["text"],
                reason=Reason(u["reason"]),
            )
            for u in out.get("unprojected", [])
        ),
        repair_steps=tuple(out.get("repair_steps", ())),
        status=Status.REVIEW,  # provisional: the quality checks decide
        reason_stages={},
        pipeline_version=PIPELINE_VERSION,
        prompt_version=prompt_version,
        model="human",
        config_hash=config_hash,
        signature=sig,
    )


@dataclass
class CommitSummary:
    """What ``commit_projected`` kept: the run, its snapshot and the rows by status."""

    run_id: str
    snapshot_id: int
    snapshot_new: bool  # False: the same input and settings were committed before
    by_status: dict[str, int]
    by_reason: dict[str, int]
    not_committed: int  # lines with input faults (no record can be made of them)
    report_dir: str

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return dict(self.__dict__)


def commit_projected(
    input_path: Path,
    output_path: Path,
    settings: Settings,
    *,
    dataset: str,
    llm: bool = False,
) -> CommitSummary:
    """Assess the pairs of a ``run_project`` output and commit them as one snapshot.

    The run id hashes the input file's bytes and the signature: when that run is in the
    store already, nothing is committed and its snapshot is returned (the report is
    written again, from the same rows).
    """
    from parallelner.quality import assess_stream
    from parallelner.quality.report import write_report
    from parallelner.store.table import commit, run_snapshot

    sig = project_signature(settings, dataset, llm)
    config_hash = signature_hash(sig)
    digest = hashlib.sha256(config_hash.encode())
    with open(input_path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    run_id = f"project-{digest.hexdigest()[:12]}"
    prompt = settings.translate.prompt_version if llm else "none"
    drafts: list[ParallelRecord] = []
    skipped = 0
    with open(output_path, encoding="utf-8") as fh:
        for line in fh:
            rec = record_from_line(
                json.loads(line), run_id=run_id, dataset=dataset, config_hash=config_hash,
                sig=sig, prompt_version=prompt,
            )  # fmt: skip
            if rec is None:
                skipped += 1
            else:
                drafts.append(rec)
    records = list(assess_stream(drafts, settings))
    report_dir = Path(settings.home) / "reports" / run_id
    title = f"Quality report: {run_id} ({Path(input_path).name})"
    write_report(records, report_dir, title=title, quality=settings.quality)
    snapshot = run_snapshot(run_id, settings)
    new = snapshot is None
    if snapshot is None:
        props = {
            "config-hash": config_hash,
            "signature": sig,
            "sources": json.dumps([str(input_path)]),
        }
        snapshot = commit(records, run_id, settings=settings, properties=props)
    return CommitSummary(
        run_id=run_id,
        snapshot_id=snapshot,
        snapshot_new=new,
        by_status=dict(Counter(str(r.status) for r in records).most_common()),
        by_reason=dict(Counter(str(x) for r in records for x in r.reasons).most_common()),
        not_committed=skipped,
        report_dir=str(report_dir),
    )

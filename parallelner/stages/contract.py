"""The one shape every stage has, and the check that a stage kept to it.

A stage is datatrove's block with spaCy's declarations: a ``name``, the record fields it
``reads`` and ``writes``, the reason codes it may add (``adds``), its settings section,
and one ``async run(draft, ctx) -> draft``. The draft is a ``ParallelRecord`` (frozen:
a stage returns a changed copy). ``run_stage`` runs one stage and checks its work:

- a field the stage changed but did not declare -> ``StageContractError`` (a bug);
- a reason it added but did not declare -> ``StageContractError``;
- every reason it added is recorded in ``reason_stages`` under the stage's name, so the
  record says which stage found what, and assessing again knows which reasons are its own.

A stage that cannot do its work returns the draft ``failed`` with its reason; the chain
stops there for that instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from parallelner.reasons import Reason, Status
from parallelner.records import ParallelRecord

if TYPE_CHECKING:
    from parallelner.llm.ask import LLM
    from parallelner.settings import Settings

__all__ = ["Context", "Stage", "StageContractError", "run_stage", "run_stages", "SOURCE_FIELDS"]

# What a draft holds before any stage ran: the source instance, the direction, the
# run's provenance, a provisional status and the chain's own bookkeeping.
SOURCE_FIELDS = frozenset(
    {
        "status",
        "reason_stages",
        "record_id",
        "instance_id",
        "run_id",
        "source_dataset",
        "src_lang",
        "tgt_lang",
        "src_text",
        "src_entities",
        "pipeline_version",
        "config_hash",
        "signature",
        "created_at",
    }
)
# Bookkeeping the chain itself writes (never a stage's business).
_CHAIN_FIELDS = frozenset({"reason_stages"})


class StageContractError(RuntimeError):
    """A stage changed a field or added a reason it did not declare (a programming error)."""


@dataclass(frozen=True)
class Context:
    """What a stage gets besides the draft: the LLM interface and the run's settings.

    ``model`` (None: the client's) and ``attempt`` are set by the repair ladder: a fresh
    translation (``attempt`` 2 and up, with the ``rejected`` translation and its
    ``problems``) or the whole chain with the fallback model.
    """

    llm: LLM
    settings: Settings
    model: str | None = None
    attempt: int = 1
    rejected: str | None = None
    problems: tuple[str, ...] = ()

    def section(self, stage: Stage) -> Any:
        """The stage's own settings section (``settings.translate`` ...)."""
        return getattr(self.settings, stage.settings_section)


class Stage:
    """Base of every stage: declarations as class attributes, one ``run``."""

    name: ClassVar[str]
    reads: ClassVar[frozenset[str]]
    writes: ClassVar[frozenset[str]]
    adds: ClassVar[frozenset[Reason]] = frozenset()
    settings_section: ClassVar[str]

    async def run(self, draft: ParallelRecord, ctx: Context) -> ParallelRecord:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<stage {self.name}>"


_FIELDS = tuple(ParallelRecord.model_fields)


def _changed(before: ParallelRecord, after: ParallelRecord) -> set[str]:
    out = set()
    for name in _FIELDS:
        a, b = getattr(before, name), getattr(after, name)
        if a is not b and a != b:
            out.add(name)
    return out


async def run_stage(stage: Stage, draft: ParallelRecord, ctx: Context) -> ParallelRecord:
    """Run ``stage`` on ``draft``; check it changed only what it declared; attribute the
    reasons it added to it."""
    after = await stage.run(draft, ctx)
    undeclared = _changed(draft, after) - stage.writes - _CHAIN_FIELDS
    if undeclared:
        raise StageContractError(
            f"stage {stage.name!r} wrote {sorted(undeclared)} but declares only "
            f"{sorted(stage.writes)}"
        )
    owners = dict(draft.reason_stages or {})
    new = [r for r in after.reasons if r.value not in owners]
    stray = [r for r in new if r not in stage.adds]
    if stray:
        raise StageContractError(
            f"stage {stage.name!r} added reasons {[r.value for r in stray]} it does not declare"
        )
    kept = {r.value for r in after.reasons}
    owners = {k: v for k, v in owners.items() if k in kept}
    owners.update({r.value: stage.name for r in new})
    if owners != after.reason_stages:
        after = after.model_copy(update={"reason_stages": owners})
    return after


def is_failed(draft: ParallelRecord) -> bool:
    """Whether a stage gave up on this instance (the chain stops)."""
    return draft.status is Status.FAILED


async def run_stages(
    draft: ParallelRecord, stages: Sequence[Stage], ctx: Context
) -> ParallelRecord:
    """Run ``stages`` in order on one draft; stop at the first that fails it."""
    for stage in stages:
        draft = await run_stage(stage, draft, ctx)
        if is_failed(draft):
            break
    return draft

"""The stage contract: declarations that hold, a chain that checks them."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from parallelner.reasons import Reason, Status
from parallelner.records import Entity, Instance, ParallelRecord
from parallelner.settings import Settings
from parallelner.stages import STAGES, Context, Stage, StageContractError, run_stage, start_draft
from parallelner.stages.contract import SOURCE_FIELDS
from parallelner.stages.ladder import Evidence, Rewrite

FIELDS = set(ParallelRecord.model_fields)


def _draft() -> ParallelRecord:
    inst = Instance(
        id="i1",
        lang="en",
        text="Prodi spoke in Rome .",
        entities=(
            Entity(start=0, end=5, label="PER", text="Prodi"),
            Entity(start=15, end=19, label="LOC", text="Rome"),
        ),
    )
    return start_draft(inst, "de", "run", "c0ffee00" * 2, Settings(), "m")


def test_every_stage_declares_its_shape():
    sections = set(Settings.model_fields)
    for stage in (*STAGES, Evidence(), Rewrite()):
        assert stage.name and stage.reads and stage.writes, stage
        assert stage.reads <= FIELDS, (stage, stage.reads - FIELDS)
        assert stage.writes <= FIELDS, (stage, stage.writes - FIELDS)
        assert stage.settings_section in sections, stage
        assert all(isinstance(r, Reason) for r in stage.adds)
    assert [s.name for s in STAGES] == ["translate", "project", "backtranslate", "assess"]


def test_each_stage_reads_only_source_fields_or_what_an_earlier_stage_wrote():
    available = set(SOURCE_FIELDS)
    for stage in STAGES:
        missing = stage.reads - available
        assert not missing, f"{stage.name} reads {sorted(missing)} before any stage wrote them"
        available |= stage.writes
    # the ladder's rungs run on an assessed pair, and the downstream stages after them
    for rung in (Evidence(), Rewrite()):
        assert rung.reads <= available, (rung.name, rung.reads - available)


def test_every_reason_a_stage_adds_is_declared_by_exactly_one_stage():
    owners: dict[Reason, list[str]] = {}
    for stage in STAGES:
        for r in stage.adds:
            owners.setdefault(r, []).append(stage.name)
    assert {r: o for r, o in owners.items() if len(o) > 1} == {}


class _Sneaky(Stage):
    name = "sneaky"
    reads = frozenset({"src_text"})
    writes = frozenset({"tgt_text"})
    settings_section = "translate"
    write_also: ClassVar[dict] = {}

    async def run(self, draft, ctx):
        return draft.model_copy(update={"tgt_text": "x", **self.write_also})


def _ctx() -> Context:
    return Context(llm=None, settings=Settings())  # type: ignore[arg-type]


def test_the_chain_rejects_an_undeclared_write():
    stage = _Sneaky()
    stage.write_also = {"back_translation": "sneaked in"}
    with pytest.raises(StageContractError, match="back_translation"):
        asyncio.run(run_stage(stage, _draft(), _ctx()))


def test_the_chain_rejects_an_undeclared_reason_and_attributes_declared_ones():
    class Adds(_Sneaky):
        writes = frozenset({"tgt_text", "reasons"})
        adds = frozenset({Reason.NO_BACKTRANSLATION})

    stage = Adds()
    stage.write_also = {"reasons": (Reason.NO_BACKTRANSLATION,)}
    out = asyncio.run(run_stage(stage, _draft(), _ctx()))
    assert out.reason_stages == {"no_backtranslation": "sneaky"}
    stage.write_also = {"reasons": (Reason.DUPLICATE,)}
    with pytest.raises(StageContractError, match="duplicate"):
        asyncio.run(run_stage(stage, _draft(), _ctx()))


def test_a_declared_write_passes_and_an_unchanged_draft_is_the_same_object():
    out = asyncio.run(run_stage(_Sneaky(), _draft(), _ctx()))
    assert out.tgt_text == "x" and out.status is Status.REVIEW

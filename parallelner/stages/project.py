"""Stage 2, ``project``: the translated mentions placed as spans of the translation, and
the paper's repair ladder for the mentions the cascade could not place.

``parallelner.align`` finds the spans (pure string matching); what it leaves unplaced
climbs ``parallelner.stages.repair`` (ask for the mention as written, rewrite the
sentence around the mentions, the fallback model). A rewrite changes the target text,
so this stage writes ``tgt_text`` too.
"""

from __future__ import annotations

from parallelner.align import project_spans
from parallelner.records import ParallelRecord
from parallelner.stages.contract import Context, Stage
from parallelner.stages.repair import repair_projection

__all__ = ["Project"]


class Project(Stage):
    """Place every translated mention in the translation; repair what is left."""

    name = "project"
    reads = frozenset(
        {"src_lang", "src_text", "src_entities", "tgt_lang", "tgt_text", "mention_translations"}
    )
    writes = frozenset({"tgt_text", "tgt_entities", "unprojected", "repair_steps"})
    settings_section = "project"

    async def run(self, draft: ParallelRecord, ctx: Context) -> ParallelRecord:
        ps = ctx.section(self)
        inst = draft.source_instance()
        text = draft.tgt_text or ""
        mentions = {m.id: m.target for m in draft.mention_translations}
        pins = {
            m.id: span
            for m in draft.mention_translations
            if m.context and (span := m.pinned(text)) is not None
        }
        projection = project_spans(
            inst, text, draft.tgt_lang, mentions, threshold=ps.fuzzy_threshold, pins=pins
        )
        steps: tuple[str, ...] = ()
        if projection.unprojected and ps.repair:
            repaired = await repair_projection(
                ctx.llm, inst, text, draft.tgt_lang, mentions, projection,
                threshold=ps.fuzzy_threshold, fallback_model=ctx.settings.llm_fallback_model,
                allow_rewrite=True,
            )  # fmt: skip
            projection, text, steps = repaired.projection, repaired.tgt_text, repaired.steps
        return draft.model_copy(
            update={
                "tgt_text": text,
                "tgt_entities": projection.entities,
                "unprojected": projection.unprojected,
                "repair_steps": steps,
            }
        )

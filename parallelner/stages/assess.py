"""Stage 3b, ``assess``: every automatic check on the pair, and its status.

``parallelner.quality`` holds the checks and the routing (pure functions); this stage
runs them on the draft. Its reasons are recomputed on every assessment: the reasons
other stages added (``reason_stages``) are kept and route too.
"""

from __future__ import annotations

from parallelner.quality import assess_record
from parallelner.quality.decide import ASSESS_REASONS
from parallelner.records import ParallelRecord
from parallelner.stages.contract import Context, Stage

__all__ = ["Assess"]


class Assess(Stage):
    """Entity verification, text checks and routing: accepted, review or rejected."""

    name = "assess"
    reads = frozenset(
        {"record_id", "src_lang", "src_text", "src_entities", "tgt_lang", "tgt_text",
         "tgt_entities", "unprojected", "back_translation", "reasons", "reason_stages",
         "status"}
    )  # fmt: skip
    writes = frozenset({"status", "reasons", "scores", "tgt_entities"})
    adds = ASSESS_REASONS
    settings_section = "quality"

    async def run(self, draft: ParallelRecord, ctx: Context) -> ParallelRecord:
        return assess_record(draft, ctx.section(self), seen=set())

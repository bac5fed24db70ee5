"""The stages for each instance, one shape each, chained (``parallelner.stages.chain``).

==================  ==========================================  ==========  ===============
stage               what it does                                settings    module
==================  ==========================================  ==========  ===============
``translate``       sentence + mentions, one LLM question       translate   ``translate``
``project``         mentions placed as spans; the paper's       project     ``project``,
                    repair ladder for unplaced ones                         ``repair``
``backtranslate``   the sentence and every span read back       translate   ``backtranslate``
``assess``          entity verification, checks, routing        quality     ``assess``
(ladder)            doubts climb rungs, each followed by        ladder      ``ladder``
                    project -> backtranslate -> assess again
==================  ==========================================  ==========  ===============

Each stage declares the record fields it ``reads`` and ``writes`` and the reasons it
``adds`` (``contract.Stage``); the chain checks every stage against its declarations.
"""

from parallelner.stages.chain import (
    STAGES,
    record_id_for,
    start_draft,
    synthesize_instances,
    synthesize_one,
)
from parallelner.stages.contract import (
    Context,
    Stage,
    StageContractError,
    run_stage,
    run_stages,
)
from parallelner.stages.ladder import LadderStats

__all__ = [
    "STAGES",
    "Context",
    "Stage",
    "StageContractError",
    "LadderStats",
    "record_id_for",
    "run_stage",
    "run_stages",
    "start_draft",
    "synthesize_instances",
    "synthesize_one",
]

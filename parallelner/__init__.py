"""ParallelNER: bilingual, span-aligned NER pairs from annotated sentences.

Offsets everywhere are Python str indices (code points), half-open; see ``records``.
"""

from parallelner.reasons import Reason, Status
from parallelner.records import Entity, Instance, ParallelRecord
from parallelner.version import PIPELINE_VERSION

__version__ = PIPELINE_VERSION

__all__ = [
    "Entity",
    "Instance",
    "ParallelRecord",
    "Reason",
    "Status",
    "__version__",
    "load_snapshot",
    "to_hf_dataset",
]


def __getattr__(name: str):
    # Lazy: the store pulls in pyiceberg, which most commands never need.
    if name in ("load_snapshot", "to_hf_dataset"):
        from parallelner import store

        return getattr(store, name)
    raise AttributeError(name)

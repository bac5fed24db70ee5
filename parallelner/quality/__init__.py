"""Stage 3 (automatic): quality checks, scores, routing to accept / review / reject, report.

- ``checks``: one pure function per check -> ``Finding`` (scores, reason codes) or None;
- ``decide``: reasons -> status; ``assess_record`` / ``assess_stream`` over records;
- ``report``: counts, plots and a markdown summary of a run, precision of ``accepted``.
"""

from parallelner.quality.checks import Finding, clear_caches, duplicate_key
from parallelner.quality.decide import (
    apply_audit,
    assess_record,
    assess_stream,
    audit_draw,
    decide,
    is_audit_sample,
    mark_duplicate,
)

__all__ = [
    "Finding",
    "duplicate_key",
    "clear_caches",
    "assess_record",
    "mark_duplicate",
    "assess_stream",
    "decide",
    "audit_draw",
    "apply_audit",
    "is_audit_sample",
]

"""Stage 2: entity alignment and span projection, and the repair ladder.

Pure API: ``project_spans(source, tgt_text, tgt_lang, mentions=None, *, threshold=0.8)
-> Projection``. The repair ladder (``parallelner.stages.repair``) is async and needs an
LLM client; it is imported lazily so that projection alone stays dependency-free.
"""

from parallelner.align.cascade import METHODS, Projection, project_spans, script_ok
from parallelner.align.normalize import Normalized, normalize

__all__ = ["METHODS", "Projection", "project_spans", "script_ok", "Normalized", "normalize"]

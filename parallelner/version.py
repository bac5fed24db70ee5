"""Code version and provenance signatures (sacrebleu style)."""

from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parallelner.settings import Settings

__all__ = ["PIPELINE_VERSION", "signature", "run_signature", "signature_hash"]

try:
    PIPELINE_VERSION = version("parallelner")
except PackageNotFoundError:  # running from a source tree without install
    PIPELINE_VERSION = "0.0.0+src"


def signature(**parts: object) -> str:
    """A readable provenance string: ``model:x|prompt:translate.v1|version:0.1.0``."""
    return "|".join(f"{k}:{v}" for k, v in parts.items() if v is not None)


def run_signature(settings: Settings, tgt_lang: str) -> str:
    """The readable provenance of a run's rows, sacrebleu style::

        model:gemma-3-270m|fallback:none|prompt:translate.v1|tgt:zh|fuzzy:0.8|repair:yes|
        ladder:16|min_chrf:25|review_chrf:40|stages:1a2b3c4d|v:0.1.0

    The settings people compare are spelled out; ``stages`` is a short hash of every
    other stage setting that changes rows (temperatures, token limits, check thresholds),
    so two runs with the same signature made the same rows. Never concurrency, paths or
    secrets. ``signature_hash`` of it is the rows' ``config_hash``.
    """
    t, p, q, ladder = settings.translate, settings.project, settings.quality, settings.ladder
    # the closed repair loop (``ladder:<budget>``); off, the signature is what it was
    # before the loop existed, so rows made without it keep their ids
    sections = ("translate", "project", "quality") + (("ladder",) if ladder.enabled else ())
    return signature(
        model=settings.llm_model,
        fallback=settings.llm_fallback_model or "none",
        prompt=t.prompt_version,
        tgt=tgt_lang,
        fuzzy=f"{p.fuzzy_threshold:g}",
        repair="yes" if p.repair else "no",
        ladder=ladder.max_requests_per_pair if ladder.enabled else None,
        min_chrf=f"{q.min_chrf:g}",
        review_chrf=f"{q.review_chrf:g}",
        stages=settings.stage_hash(*sections)[:8],
        v=PIPELINE_VERSION,
    )


def signature_hash(sig: str) -> str:
    """The 16-hex ``config_hash`` derived from a signature string."""
    return hashlib.sha256(sig.encode()).hexdigest()[:16]


def stage_config_hash(settings: Settings, tgt_lang: str) -> str:
    """Hash of everything that changes a shard's rows (never concurrency or paths): the
    hash of the run's readable signature (``run_signature``)."""
    return signature_hash(run_signature(settings, tgt_lang))

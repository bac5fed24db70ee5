"""Code version and provenance signatures (sacrebleu style)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    PIPELINE_VERSION = version("parallelner")
except PackageNotFoundError:  # running from a source tree without install
    PIPELINE_VERSION = "0.0.0+src"


def signature(**parts: object) -> str:
    """A readable provenance string: ``model:x|prompt:translate.v1|version:0.1.0``."""
    return "|".join(f"{k}:{v}" for k, v in parts.items() if v is not None)

"""Script statistics for the quality checks: re-exported from ``parallelner.languages``.

The character -> script table and the counting (by letter or by word token) live in
``parallelner.languages``, once; this module only keeps the old import path working.
"""

from __future__ import annotations

from parallelner.languages import expected_scripts, script_counts, script_token_share, strip_urls

__all__ = ["strip_urls", "script_counts", "expected_scripts", "script_token_share"]

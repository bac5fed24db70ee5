"""Script statistics for the quality checks: re-exported from ``parallelner.langid``.

The character -> script table and the counting (by letter or by word token) live in
``parallelner.langid``, once; this module only keeps the old import path working.
"""

from __future__ import annotations

from parallelner.langid import expected_scripts, script_counts, script_token_share, strip_urls

__all__ = ["strip_urls", "script_counts", "expected_scripts", "script_token_share"]

"""Tidy ``--help`` for the whole command tree: reflowed docstrings, plain type names.

Typer's rich help keeps a docstring's own line breaks after the first paragraph, so a
paragraph wrapped at 88 columns in the source comes out ragged in an 80-column terminal;
it labels every option with its Python type (``<bool>`` on a flag, ``<list[Path]>``).
``tidy_help`` rewrites both on the built command, once, before it runs.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["reflow", "tidy_help", "type_label"]

_KEEP_BREAKS = ("-", "*", " ", "\t", "$", ">")  # lists, indented code, prompts


def reflow(text: str) -> str:
    """Join each prose paragraph into one line; the terminal wraps it at its own width.

    Paragraphs (blank-line separated) whose lines start like a list item or indented code,
    and paragraphs marked with click's ``\\b``, keep their line breaks.
    """
    paragraphs = inspect.cleandoc(text).split("\n\n")
    out = []
    for para in paragraphs:
        lines = para.split("\n")
        if para.startswith("\b") or any(line.startswith(_KEEP_BREAKS) for line in lines[1:]):
            out.append(para)
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)


_NAMES = {
    "str": "TEXT",
    "int": "INTEGER",
    "int range": "INTEGER",
    "float": "NUMBER",
    "float range": "NUMBER",
    "path": "PATH",
    "file": "FILE",
    "directory": "DIR",
    "bool": "BOOLEAN",
    "datetime": "DATETIME",
}


def type_label(typer_label: str | None, *, flag: bool = False) -> str | None:
    """A parameter's value as help shows it: None for a flag, ``PATH...``, ``a|b``.

    ``typer_label`` is Typer's own (``<str>``, ``<int range>``, ``<list[Path]>``...).
    """
    if flag or not typer_label:
        return None
    label = typer_label.strip()
    many = label.endswith("...")
    label = label.removesuffix("...").removeprefix("<").removesuffix(">")
    if label.startswith("list[") and label.endswith("]"):
        label, many = label[5:-1], True
    label = _NAMES.get(label.lower(), label if "|" in label else label.upper())
    return label + ("..." if many else "")


def _fold_long_words() -> None:
    """Fold a word longer than the help column (an env var name, a path) instead of
    cutting it with '…' (``PARALLELNER_LLM_MAX_IN_FL…`` at 80 columns).

    Typer builds every help text through ``rich_utils._make_rich_text``; a Text's own
    overflow wins over the table column's ``ellipsis``. Without that function (another
    Typer version) help is left as Typer renders it.
    """
    from rich.text import Text
    from typer import rich_utils

    make = getattr(rich_utils, "_make_rich_text", None)
    if make is None or getattr(make, "_folds", False):
        return

    def folding(*args: Any, **kwargs: Any) -> Any:
        text = make(*args, **kwargs)
        if isinstance(text, Text):
            text.overflow = "fold"
        return text

    folding._folds = True  # type: ignore[attr-defined]
    rich_utils._make_rich_text = folding


def tidy_help(command: Any) -> Any:
    """Reflow the help of ``command`` and every subcommand; plain type labels on params."""
    _fold_long_words()
    for attr in ("help", "short_help"):
        text = getattr(command, attr, None)
        if text:
            setattr(command, attr, reflow(text))
    for param in getattr(command, "params", ()):
        _tidy_param(param)
    if hasattr(command, "get_help_option"):  # --help is made per context, at parse time
        make = command.get_help_option

        def get_help_option(ctx: Any, _make: Any = make) -> Any:
            option = _make(ctx)
            if option is not None:
                _tidy_param(option)
            return option

        command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)
    return command


def _tidy_param(param: Any) -> None:
    original = getattr(param, "display_type_rich", None)
    if original is None or getattr(original, "_tidy", False):
        return
    flag = bool(getattr(param, "is_flag", False) or getattr(param, "count", False))

    # an instance attribute shadows the method Typer's rich help calls
    def label(ctx: Any, _original: Any = original, _flag: bool = flag) -> str | None:
        return type_label(_original(ctx=ctx), flag=_flag)

    label._tidy = True  # type: ignore[attr-defined]
    param.display_type_rich = label
    if not hasattr(param, "opts") or any(o.startswith("-") for o in param.opts):
        return
    if getattr(param, "metavar", None) is None:  # an argument: SOURCES in the usage line
        param.metavar = param.name.upper()

"""`--help` of every command at 80 columns: whole paragraphs, plain type names, no cuts."""

from __future__ import annotations

import re
import sys

import pytest
import typer

from parallelner_cli import app, main

WIDTH = 80


def _commands(command=None, path=()):
    command = command or typer.main.get_command(app)
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands())


def help_text(path: tuple[str, ...], monkeypatch, capsys) -> str:
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.delenv("TERMINAL_WIDTH", raising=False)
    monkeypatch.setattr(sys, "argv", ["parallelner", *path, "--help"])
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None)
    return capsys.readouterr().out


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "parallelner")
def test_help_fits_80_columns_with_plain_types_and_whole_paragraphs(path, monkeypatch, capsys):
    out = help_text(path, monkeypatch, capsys)
    lines = out.splitlines()
    assert all(len(line) <= WIDTH for line in lines)
    assert "…" not in out  # nothing cut
    # flags take no value: no <bool>; values read TEXT, PATH..., INTEGER, not <list[Path]>
    assert not re.search(r"<(bool|str|int|float|path|list\[)", out), out
    assert "Usage: parallelner" in out
    # the description above the panels: each line is full, i.e. the next line's first
    # word would not have fitted (a paragraph re-wrapped twice leaves short lines)
    head = [line.strip() for line in out.split("╭")[0].splitlines() if "Usage:" not in line]
    for line, nxt in zip(head, head[1:], strict=False):
        if not line or not nxt:  # a paragraph ends
            continue
        room = WIDTH - 2 - len(line)  # one column of padding each side
        assert len(nxt.split()[0]) + 1 > room, f"ragged line: {line!r} (then {nxt!r})"


def test_flags_show_no_type_and_values_show_theirs(monkeypatch, capsys):
    out = help_text(("run",), monkeypatch, capsys)
    json_line = next(line for line in out.splitlines() if "--json" in line)
    assert re.search(r"--json\s+Print machine-readable JSON", json_line)
    assert re.search(r"--workers\s+INTEGER", out)
    assert re.search(r"SOURCES\s+PATH\.\.\.", out)

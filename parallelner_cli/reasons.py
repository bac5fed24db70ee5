"""`parallelner reasons`: the reference table of status and reason codes."""

from __future__ import annotations

import inspect
import re

import typer
from rich.table import Table

from parallelner import reasons as reasons_module
from parallelner_cli._common import JsonOption, console, print_json

_GROUP = re.compile(r"^\s*# --- (?P<title>.+?) -+\s*$")
_MEMBER = re.compile(r'^\s*[A-Z0-9_]+ = "(?P<code>[a-z0-9_]+)"\s*(?:#\s*(?P<doc>.*))?$')


def reason_table() -> list[dict[str, str]]:
    """Every reason code with its stage and one-line meaning, read from reasons.py itself."""
    rows, group = [], ""
    source = inspect.getsource(reasons_module.Reason)
    for line in source.splitlines():
        if m := _GROUP.match(line):
            group = m["title"].split(":")[0]
        elif m := _MEMBER.match(line):
            rows.append({"stage": group, "code": m["code"], "meaning": m["doc"] or ""})
    return rows


def reasons(json_: JsonOption = False) -> None:
    """List every reason code a record or quarantined line can carry, and what it means.

    Statuses: accepted, rejected, review, reviewed_accepted, reviewed_rejected, failed.
    """
    rows = reason_table()
    if json_:
        print_json({"statuses": [s.value for s in reasons_module.Status], "reasons": rows})
        return
    t = Table("stage", "code", "meaning")
    last = None
    for r in rows:
        t.add_row(
            r["stage"] if r["stage"] != last else "", r["code"], r["meaning"], end_section=False
        )
        last = r["stage"]
    console.print(t)


def register(app: typer.Typer) -> None:
    app.command("reasons")(reasons)

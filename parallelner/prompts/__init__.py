"""Versioned prompt files, and the one loader that reads them.

A prompt file ``parallelner/prompts/<name>.v<N>.txt`` has up to three sections:
``### system`` and ``### user`` (chat endpoints, JSON reply) and ``### completion`` (the
embedded local base model, completion endpoint). Values are ``string.Template``
placeholders (``$src_name``). A change to a prompt is a new file, never an edit.
``translate-local.v1.json`` holds the few-shot examples of the local backend.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from string import Template
from typing import Any

__all__ = ["Prompt", "load_prompt", "read_prompt_file", "load_prompt_data"]


@cache
def read_prompt_file(name: str) -> str:
    """The text of ``parallelner/prompts/<name>`` (cached)."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


@cache
def load_prompt_data(name: str) -> dict[str, Any]:
    """A JSON prompt file (e.g. ``translate-local.v1``'s few-shot examples), parsed."""
    return json.loads(read_prompt_file(f"{name}.json"))


class Prompt:
    """One versioned prompt: ``version`` (e.g. ``repair-mention.v2``) and its sections."""

    def __init__(self, version: str, sections: dict[str, str]):
        self.version = version
        self._sections = {k: Template(v.strip("\n")) for k, v in sections.items()}

    def chat(self, **values: str) -> list[dict[str, str]]:
        """Chat messages (system + user) with ``values`` filled in."""
        return [
            {"role": "system", "content": self._sections["system"].safe_substitute(values)},
            {"role": "user", "content": self._sections["user"].safe_substitute(values)},
        ]

    def completion(self, **values: str) -> str:
        """The completion prompt with ``values`` filled in."""
        return self._sections["completion"].safe_substitute(values)


@cache
def load_prompt(version: str) -> Prompt:
    """Read ``parallelner/prompts/<version>.txt`` into its sections (cached)."""
    sections: dict[str, str] = {}
    name = None
    for line in read_prompt_file(f"{version}.txt").splitlines(keepends=True):
        if line.startswith("### "):
            name = line[4:].strip()
            sections[name] = ""
        elif name is not None:
            sections[name] += line
    return Prompt(version, sections)

"""The versioned prompt files of stage 2, and how they are rendered.

A prompt file ``parallelner/prompts/<name>.v<N>.txt`` has three sections: ``### system``
and ``### user`` (chat endpoints, JSON reply) and ``### completion`` (the embedded local
base model, completion endpoint). A change to a prompt is a new file, never an edit.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template

__all__ = ["Prompt", "load_prompt", "lang_name"]

_LANG_NAMES = {
    "en": "English",
    "zh": "Chinese",
    "de": "German",
    "es": "Spanish",
    "it": "Italian",
    "fr": "French",
    "pt": "Portuguese",
    "nl": "Dutch",
    "ru": "Russian",
    "ja": "Japanese",
    "ko": "Korean",
    "ar": "Arabic",
}


def lang_name(lang: str) -> str:
    """English name of a BCP-47 language tag, for prompts (``zh-Hant`` -> Chinese)."""
    return _LANG_NAMES.get(lang.split("-")[0].lower(), lang)


class Prompt:
    """One versioned prompt: ``version`` (e.g. ``repair-mention.v1``) and its sections."""

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
    """Read ``parallelner/prompts/<version>.txt`` (cached)."""
    text = resources.files("parallelner.prompts").joinpath(f"{version}.txt").read_text("utf-8")
    sections: dict[str, str] = {}
    name = None
    for line in text.splitlines(keepends=True):
        if line.startswith("### "):
            name = line[4:].strip()
            sections[name] = ""
        elif name is not None:
            sections[name] += line
    return Prompt(version, sections)

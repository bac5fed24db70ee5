"""The versioned prompt files of stage 2, and how they are rendered.

A prompt file ``parallelner/prompts/<name>.v<N>.txt`` has three sections: ``### system``
and ``### user`` (chat endpoints, JSON reply) and ``### completion`` (the embedded local
base model, completion endpoint). A change to a prompt is a new file, never an edit.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template

from parallelner.langid import lang_name, zh_variant

__all__ = ["Prompt", "load_prompt", "lang_name", "example_block"]


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


# One-shot examples for the completion prompts of the local base model (a made-up
# sentence, not from any evaluation set): source text, target text, (mention, as written).
_EXAMPLE_EN = "The European Commission will discuss the proposal with the German government in Brussels on Monday ."
_EXAMPLES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "de": (
        "Die Europäische Kommission wird den Vorschlag am Montag in Brüssel mit der deutschen Regierung erörtern .",
        [
            ("European Commission", "Europäische Kommission"),
            ("German", "deutschen"),
            ("Brussels", "Brüssel"),
        ],
    ),
    "es": (
        "La Comisión Europea debatirá la propuesta con el Gobierno alemán en Bruselas el lunes .",
        [
            ("European Commission", "Comisión Europea"),
            ("German", "alemán"),
            ("Brussels", "Bruselas"),
        ],
    ),
    "it": (
        "La Commissione europea discuterà la proposta con il governo tedesco a Bruxelles lunedì .",
        [
            ("European Commission", "Commissione europea"),
            ("German", "tedesco"),
            ("Brussels", "Bruxelles"),
        ],
    ),
    "fr": (
        "La Commission européenne discutera de la proposition avec le gouvernement allemand à Bruxelles lundi .",
        [
            ("European Commission", "Commission européenne"),
            ("German", "allemand"),
            ("Brussels", "Bruxelles"),
        ],
    ),
    "zh-Hans": (
        "欧盟委员会将于周一在布鲁塞尔与德国政府讨论该提案。",
        [("European Commission", "欧盟委员会"), ("German", "德国"), ("Brussels", "布鲁塞尔")],
    ),
    "zh-Hant": (
        "歐盟委員會將於週一在布魯塞爾與德國政府討論該提案。",
        [("European Commission", "歐盟委員會"), ("German", "德國"), ("Brussels", "布魯塞爾")],
    ),
}
_TRAD = set("們國會說這為時來對學後個經過發還與開關東車長門問間們給區當種點體議員聯總統")
_SIMP = set("们国会说这为时来对学后个经过发还与开关东车长门问间们给区当种点体议员联总统")


def _example_key(tgt_lang: str, tgt_text: str) -> str:
    base = tgt_lang.split("-")[0].lower()
    if base != "zh":
        return base
    variant = zh_variant(tgt_lang)
    if variant is not None:
        return "zh-Hant" if variant == "hant" else "zh-Hans"
    trad = sum(c in _TRAD for c in tgt_text)
    simp = sum(c in _SIMP for c in tgt_text)
    return "zh-Hant" if trad > simp else "zh-Hans"


def example_block(kind: str, src_lang: str, tgt_lang: str, tgt_text: str = "") -> str:
    """A one-shot example for a completion prompt (``kind``: translate | mention).

    Empty when there is no example for the language pair (English sources only).
    ``tgt_text`` (the known target sentence, if any) picks Traditional or Simplified
    Chinese when the tag does not say.
    """
    ex = _EXAMPLES.get(_example_key(tgt_lang, tgt_text))
    if src_lang.split("-")[0].lower() != "en" or ex is None:
        return ""
    src, tgt = lang_name(src_lang), lang_name(tgt_lang)
    target, pairs = ex
    out = [""]
    if kind == "translate":
        for m, t in pairs:
            out += [f"{src} sentence: {_EXAMPLE_EN}", f"{src} name: {m}", f"{tgt} name: {t}", ""]
    else:
        out += [f"{src} sentence: {_EXAMPLE_EN}", f"{tgt} translation: {target}"]
        out += [f'In the {tgt} translation, "{m}" is written exactly as: "{t}"' for m, t in pairs]
        out.append("")
    return "\n".join(out)

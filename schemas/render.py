"""Render KnowCoder-style code prompts: class definitions, an instruction, the sentence.

Extraction prompt (``render_prompt``)::

    class Entity: ...                    # the chosen classes and their ancestors
    class Person(Entity): ...

    \"\"\"
    This is an object-oriented programming task: ...
    \"\"\"
    sentence = "Barack Obama visited Paris."

and the model completes ``results = [Person("Barack Obama"), Location("Paris")]``
(``render_results``). The alignment prompt (``render_alignment_prompt``) adds the source
sentence and its results and asks for the results of the translated sentence.

Every string is written as a double-quoted Python literal that ``ast.literal_eval`` reads
back identically for any unicode text (``py_string``); ``schemas.parse`` reads replies.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from schemas.ontology import class_source, get_class, ontology_classes, parent_chain

#: Versions of the two prompt layouts; a change to the text means a new version.
EXTRACTION_PROMPT_VERSION = "knowcoder-ner.v1"
ALIGNMENT_PROMPT_VERSION = "knowcoder-align.v1"

EXTRACTION_INSTRUCTION = (
    "This is an object-oriented programming task: some Entity Classes are defined above. "
    "Please instantiate all the corresponding Entity Objects in the following sentence."
)
ALIGNMENT_INSTRUCTION = (
    "This is an object-oriented programming task: some Entity Classes are defined above. "
    "The source sentence and its Entity Objects are given, and the target sentence is its "
    "translation. Please instantiate all the corresponding Entity Objects in the target "
    "sentence, each with its mention exactly as it is written in the target sentence."
)

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Control characters, lone surrogates and line/paragraph separators are escaped: raw, they
# would end the line, fail to encode, or be split as a line break by line-based tools.
_ESCAPED_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}


def py_string(text: str) -> str:
    """Return ``text`` as a double-quoted Python string literal that reads back identically.

    Printable characters (CJK, emoji, any script) are kept as they are, so the model reads
    the text it is asked about; only backslash, the double quote and characters that would
    break a line of code are escaped.
    """
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif unicodedata.category(ch) in _ESCAPED_CATEGORIES:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _with_ancestors(classes: Iterable[str | type]) -> list[str]:
    """Return the named classes plus their ancestors, parents before children, ontology order."""
    wanted: set[str] = set()
    for cls in classes:
        name = cls if isinstance(cls, str) else cls.__name__
        wanted.update(parent_chain(name))  # raises KeyError for a name not in the ontology
    return [name for name in ontology_classes() if name in wanted]


def render_schema(classes: Iterable[str | type] | None = None) -> str:
    """Return the source of the given ontology classes (names or classes) and their ancestors.

    ``None`` renders the whole ontology. The base ``Entity`` always comes first, and a class
    always after its parent, so the text is valid Python.
    """
    names = list(ontology_classes()) if classes is None else _with_ancestors(classes)
    return "\n\n".join(class_source(name) for name in names)


def render_results(entities: Iterable[tuple[str, str]]) -> str:
    """Return ``results = [Cls("mention"), ...]`` for ``(class_name, mention)`` pairs, in order.

    ValueError if a class name is not a Python identifier (the line would not parse).
    """
    items = []
    for class_name, mention in entities:
        if not class_name.isidentifier():
            raise ValueError(f"class name {class_name!r} is not a Python identifier")
        items.append(f"{class_name}({py_string(mention)})")
    return f"results = [{', '.join(items)}]"


def _docstring(text: str) -> str:
    return f'"""\n{text}\n"""'


def render_prompt(sentence: str, classes: Iterable[str | type] | None = None) -> str:
    """Return the extraction prompt: schema, instruction and ``sentence = "..."``.

    ``classes`` chooses the entity types shown (default: the whole ontology). The model's
    completion is expected to be a ``results = [...]`` line (see ``schemas.parse``).
    """
    return (
        f"{render_schema(classes)}\n\n"
        f"{_docstring(EXTRACTION_INSTRUCTION)}\n"
        f"sentence = {py_string(sentence)}\n"
    )


def render_alignment_prompt(
    src_sentence: str,
    src_results: Iterable[tuple[str, str]],
    tgt_sentence: str,
    classes: Iterable[str | type] | None = None,
) -> str:
    """Return the translated-instance-prediction prompt of KnowCoder-X's alignment task.

    Shows the schema, the source sentence with its ``source_results`` and the target
    sentence; the model completes ``results = [...]`` for the target sentence.
    ``classes`` defaults to the classes used in ``src_results``; those are always shown.
    """
    src_results = list(src_results)
    shown = [name for name, _ in src_results]
    for name in shown:
        get_class(name)  # KeyError naming the known classes
    if classes is not None:
        shown = [*(c if isinstance(c, str) else c.__name__ for c in classes), *shown]
    if not shown:
        shown = ["Entity"]
    source_line = render_results(src_results).replace("results = ", "source_results = ", 1)
    return (
        f"{render_schema(shown)}\n\n"
        f"{_docstring(ALIGNMENT_INSTRUCTION)}\n"
        f"source_sentence = {py_string(src_sentence)}\n"
        f"{source_line}\n"
        f"target_sentence = {py_string(tgt_sentence)}\n"
    )

"""The unified IE ontology (KnowCoder-X style classes), label maps, code prompts and parsing.

The bottom of the dependency graph: nothing here imports ``parallelner``.
"""

from schemas.label_maps import class_for_label, known_datasets, label_map_for, register_label_map
from schemas.ontology import (
    TypeInfo,
    class_source,
    get_class,
    ontology_classes,
    parent_chain,
    type_info,
)
from schemas.parse import ParsedEntity, ParseResult, Problem, ProblemKind, parse_results
from schemas.render import (
    py_string,
    render_alignment_prompt,
    render_prompt,
    render_results,
    render_schema,
)

__all__ = [
    "ParseResult",
    "ParsedEntity",
    "Problem",
    "ProblemKind",
    "TypeInfo",
    "class_for_label",
    "class_source",
    "get_class",
    "known_datasets",
    "label_map_for",
    "ontology_classes",
    "parent_chain",
    "parse_results",
    "py_string",
    "register_label_map",
    "render_alignment_prompt",
    "render_prompt",
    "render_results",
    "render_schema",
    "type_info",
]

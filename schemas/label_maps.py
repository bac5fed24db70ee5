"""Maps from each dataset's own entity labels to ontology class names.

Records keep the dataset's label (``PER``, ``company``...); these maps say which
``schemas.ontology`` class each label means. Dataset names are case-insensitive.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from schemas.ontology import ontology_classes

_CONLL = {
    "PER": "Person",
    "ORG": "Organization",
    "LOC": "Location",
    "MISC": "Miscellaneous",
}

# CLUENER2020's ten fine-grained Chinese types.
_CLUENER = {
    "address": "Address",
    "book": "Book",
    "company": "Company",
    "game": "Game",
    "government": "GovernmentAgency",
    "movie": "Movie",
    "name": "Person",
    "organization": "Organization",
    "position": "Position",
    "scene": "Scene",
}

# OntoNotes 5.0's eighteen types.
_ONTONOTES = {
    "PERSON": "Person",
    "NORP": "Group",
    "FAC": "Facility",
    "ORG": "Organization",
    "GPE": "GeopoliticalEntity",
    "LOC": "Location",
    "PRODUCT": "Product",
    "EVENT": "Event",
    "WORK_OF_ART": "CreativeWork",
    "LAW": "Law",
    "LANGUAGE": "Language",
    "DATE": "Date",
    "TIME": "Time",
    "PERCENT": "Percent",
    "MONEY": "Money",
    "QUANTITY": "Quantity",
    "ORDINAL": "Ordinal",
    "CARDINAL": "Cardinal",
}

_MAPS: dict[str, Mapping[str, str]] = {}


def register_label_map(dataset: str, mapping: Mapping[str, str]) -> None:
    """Add (or replace) the label map of ``dataset``; ValueError if a target class is unknown."""
    if not dataset.strip():
        raise ValueError("dataset name must not be empty")
    classes = ontology_classes()
    unknown = sorted({target for target in mapping.values() if target not in classes})
    if unknown:
        raise ValueError(
            f"label map for {dataset!r} names unknown ontology classes: {', '.join(unknown)}"
        )
    _MAPS[dataset.strip().lower()] = MappingProxyType(dict(mapping))


def label_map_for(dataset: str) -> dict[str, str]:
    """Return the label -> ontology class name map of ``dataset``; KeyError names the known datasets."""
    try:
        return dict(_MAPS[dataset.strip().lower()])
    except KeyError:
        raise KeyError(
            f"no label map for dataset {dataset!r}; known datasets: {', '.join(known_datasets())}"
        ) from None


def known_datasets() -> list[str]:
    """Return the names of the datasets that have a label map, sorted."""
    return sorted(_MAPS)


def class_for_label(dataset: str, label: str) -> str:
    """Return the ontology class name of one dataset label; KeyError names the dataset's labels."""
    mapping = label_map_for(dataset)
    try:
        return mapping[label]
    except KeyError:
        raise KeyError(
            f"label {label!r} is not in the {dataset} label map; known: {', '.join(mapping)}"
        ) from None


register_label_map("conll", _CONLL)
register_label_map("wikineural", _CONLL)
# The human-translated pairs of data/projection-dev: Europarl NER (Agerri et al., 2018)
# uses CoNLL's four labels, Universal NER (PUD) three of them (PER, ORG, LOC).
register_label_map("europarl", _CONLL)
register_label_map("pud", _CONLL)
register_label_map("cluener", _CLUENER)
register_label_map("ontonotes", _ONTONOTES)

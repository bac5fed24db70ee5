"""The Label Studio labeling interface, generated from the ontology classes in use.

Layout (top to bottom): short instructions; the source sentence with its entities
highlighted read-only (HTML built by ``annotation.tasks``, never editable); the target
sentence with one label per ontology class, the projected spans arriving as editable
pre-annotations; the decision (Accept / Reject), the reasons for a rejection and an
optional comment. The control names below are a contract with ``annotation.tasks``.
"""

from __future__ import annotations

import colorsys
import hashlib
import html
from collections.abc import Iterable

__all__ = [
    "DECISION",
    "REASON",
    "COMMENT",
    "LABELS",
    "TARGET",
    "ACCEPT",
    "REJECT",
    "REJECT_REASONS",
    "INSTRUCTIONS",
    "labeling_config",
    "label_colour",
    "config_labels",
]

# Control and object names (from_name / to_name in results).
TARGET = "tgt"
LABELS = "label"
DECISION = "decision"
REASON = "reason"
COMMENT = "comment"

ACCEPT = "Accept"
REJECT = "Reject"

# Choice text shown to the annotator -> reason code (parallelner.reasons.Reason value).
REJECT_REASONS: dict[str, str] = {
    "Bad translation": "review_bad_translation",
    "Wrong span": "review_wrong_span",
    "Wrong type": "review_wrong_type",
    "Missing entity": "review_missing_entity",
    "Other": "review_other",
}

INSTRUCTIONS = (
    "How to review: compare the translation with the source. Fix the coloured spans in the TARGET "
    "sentence: drag to select a span, pick its type above; click a span and press "
    "Backspace to delete it. Accept when the translation is faithful and every source "
    "entity is marked once with the right type; otherwise Reject and say why."
)

_STYLE = """
  .pn-box { padding: 8px 12px; margin-bottom: 8px; border-radius: 6px; }
  .pn-help { background: #f4f6fb; border: 1px solid #d9deea; }
  .pn-help h1, .pn-help h2, .pn-help h3, .pn-help h4, .pn-help h5, .pn-help h6 {
    font-size: 13px !important; font-weight: 400 !important; margin: 2px 0 !important; }
  .pn-box > h1, .pn-box > h2, .pn-box > h3, .pn-box > h4, .pn-box > h5, .pn-box > h6 {
    font-size: 14px !important; margin: 2px 0 6px !important; }
  .pn-src { background: #fafafa; border: 1px solid #e3e3e3; }
  .pn-tgt { background: #ffffff; border: 2px solid #4a78d6; }
  .pn-src mark { padding: 1px 3px; border-radius: 3px; }
  .pn-src mark sub { font-size: 0.7em; margin-left: 2px; opacity: 0.8; }
"""


def label_colour(name: str) -> str:
    """A stable, distinct-enough background colour for an ontology class (hex)."""
    h = int(hashlib.sha1(name.encode("utf-8")).hexdigest()[:8], 16)
    hue = (h % 360) / 360.0
    r, g, b = colorsys.hls_to_rgb(hue, 0.55, 0.75)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def labeling_config(classes: Iterable[str]) -> str:
    """Labeling-config XML with one target label per ontology class in ``classes``."""
    names = sorted(set(classes))
    if not names:
        raise ValueError("a labeling config needs at least one entity class")
    labels = "\n".join(
        f'      <Label value="{_attr(n)}" background="{label_colour(n)}"/>' for n in names
    )
    reasons = "\n".join(f'      <Choice value="{_attr(r)}"/>' for r in REJECT_REASONS)
    return f"""<View>
  <Style>{_STYLE}</Style>
  <View className="pn-box pn-help">
    <Header value="{_attr(INSTRUCTIONS)}" size="6" underline="false"/>
  </View>
  <View className="pn-box pn-src">
    <Header value="Source ($src_lang), read only. In review because: $why" size="6"/>
    <HyperText name="src" value="$src_html" inline="true" selectionEnabled="false"/>
  </View>
  <View className="pn-box pn-tgt">
    <Header value="Target ($tgt_lang): correct the spans" size="6"/>
    <Labels name="{LABELS}" toName="{TARGET}" showInline="true">
{labels}
    </Labels>
    <Text name="{TARGET}" value="$tgt_text" granularity="symbol"/>
  </View>
  <View className="pn-box">
    <Header value="Decision" size="6"/>
    <Choices name="{DECISION}" toName="{TARGET}" choice="single-radio" required="true" showInline="true">
      <Choice value="{ACCEPT}" hint="faithful translation, spans correct"/>
      <Choice value="{REJECT}"/>
    </Choices>
    <Choices name="{REASON}" toName="{TARGET}" choice="multiple" showInline="true"
             visibleWhen="choice-selected" whenTagName="{DECISION}" whenChoiceValue="{REJECT}">
{reasons}
    </Choices>
    <TextArea name="{COMMENT}" toName="{TARGET}" rows="2" maxSubmissions="1" editable="true"
              placeholder="Optional comment"/>
  </View>
</View>
"""


def config_labels(config: str) -> set[str]:
    """The target label values declared in a labeling config made by ``labeling_config``."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(config)
    out: set[str] = set()
    for labels in root.iter("Labels"):
        if labels.get("name") == LABELS:
            out.update(lbl.get("value", "") for lbl in labels.iter("Label"))
    return out

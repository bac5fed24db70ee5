"""The labeling page in a real browser (Debian's headless Chromium): pre-annotations
are drawn on the right characters and a span the annotator selects comes back with the
offsets pull expects, with an emoji and a CJK Extension B character before the spans."""

from __future__ import annotations

import json
import uuid

from annotation.client import ReviewClient
from annotation.offsets import resolve_span
from annotation.push import push
from annotation.screenshot import labeling_page
from tests.annotation.conftest import LabelStudioServer, with_prefix

# Selects `needle` in the target text as a user's drag would, then releases the mouse.
SELECT = """(() => {
  const c = [...document.querySelectorAll('.lsf-richtext__container')]
    .find(el => el.textContent.includes(%(anchor)s));
  const w = document.createTreeWalker(c, NodeFilter.SHOW_TEXT);
  const nodes = []; let n, full = '';
  while ((n = w.nextNode())) { nodes.push([n, full.length]); full += n.data; }
  const at = full.indexOf(%(needle)s), end = at + %(needle)s.length;
  const pos = i => nodes.find(([node, off]) => i >= off && i <= off + node.data.length);
  const [sn, so] = pos(at), [en, eo] = pos(end);
  const r = document.createRange(); r.setStart(sn, at - so); r.setEnd(en, end - eo);
  const s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
  const chosen = s.toString();
  sn.parentElement.dispatchEvent(new MouseEvent('mouseup', {bubbles: true}));
  return chosen;
})()"""


def test_labeling_page_draws_and_records_code_point_spans(
    label_studio: LabelStudioServer, pud_records
) -> None:
    record = with_prefix(pud_records[0], "🎉𠮷 ")
    client = ReviewClient(label_studio.url, label_studio.token)
    title = f"ui {uuid.uuid4().hex[:8]}"
    pid = push([record], client, title)["project_id"]
    task_id = client.task_record_ids(pid)[record.record_id]
    with labeling_page(label_studio.url, label_studio.user, label_studio.password,
                       pid, task_id) as page:  # fmt: skip
        highlights = (
            "[...document.querySelectorAll('.lsf-richtext__container .htx-highlight')]"
            ".map(e => e.textContent)"
        )
        # the page draws regions after the text: wait for all of them (slow under load)
        page.wait_for(f"{highlights}.length >= {len(record.tgt_entities)}", 120)
        drawn = page.js(highlights)
        # every projected span is highlighted on exactly its own characters
        assert sorted(drawn) == sorted(e.text for e in record.tgt_entities)

        target = record.tgt_entities[0]
        label = ("[...document.querySelectorAll('.lsf-label')]"
                 ".find(e => e.textContent.startsWith('Organization'))")  # fmt: skip
        page.wait_for(f"!!{label}", 60)
        page.js(f"{label}.click()")
        page.wait_for(f"{label}.className.includes('selected')", 30)
        selected = page.js(SELECT % {"anchor": json.dumps(record.tgt_text[-6:]),
                                     "needle": json.dumps(target.text)})  # fmt: skip
        assert selected == target.text
        serialized = "JSON.stringify(window.Htx.annotationStore.selected.serializeAnnotation())"
        page.wait_for(f'{serialized}.includes(\'"origin":"manual"\')', 60)
        result = json.loads(page.js(serialized))
    manual = [r for r in result if r.get("origin") == "manual"]
    assert len(manual) == 1
    value = manual[0]["value"]
    assert value["labels"] == ["Organization"] and value["text"] == target.text
    # the browser stores code points: exactly the record's own offsets
    assert (value["start"], value["end"]) == (target.start, target.end)
    assert resolve_span(record.tgt_text, value["start"], value["end"], value["text"]) == (
        target.start,
        target.end,
    )


HEADS = "[...document.querySelectorAll('.lsf-th[data-id]')].map(e => e.dataset.id)"
CELLS = "[...document.querySelectorAll('.lsf-table__cell')].map(e => e.textContent)"


def test_data_manager_table_shows_plain_text_not_html(
    label_studio: LabelStudioServer, pud_records
) -> None:
    """The task table's columns are plain text; the HTML source is for the labeling view."""
    client = ReviewClient(label_studio.url, label_studio.token)
    title = f"dm {uuid.uuid4().hex[:8]}"
    report = push(pud_records[:2], client, title)
    pid = report["project_id"]
    assert report["project_url"] == f"{label_studio.url}/projects/{pid}/data"
    push(pud_records[:3], client, title)  # a second push adds no second tab
    assert client.view_titles(pid) == ["Review"]
    with labeling_page(label_studio.url, label_studio.user, label_studio.password,
                       pid, None) as page:  # fmt: skip
        heads = page.js(HEADS)
        cells = page.js(CELLS)
    data_columns = [h for h in heads if h.startswith("tasks:data.")]
    assert data_columns[:1] == ["tasks:data.tgt_text"], heads
    assert "tasks:data.src_text" in data_columns and "tasks:data.src_html" not in heads
    assert not [c for c in cells if "<div" in c or "pn-src-text" in c]
    assert any(pud_records[0].src_text[:20] in c for c in cells)

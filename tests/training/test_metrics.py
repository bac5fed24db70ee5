"""Strict span+type scoring on crafted replies: exact counts, malformed replies counted."""

from __future__ import annotations

import pytest

from training.metrics import Prediction, read_prediction, score

# (reply as a model might write it, the pairs it must read to, malformed kind or None)
REPLIES = [
    (
        'results = [Person("Kori Schulman"), Location("United States")]',
        (("Person", "Kori Schulman"), ("Location", "United States")),
        None,
    ),
    ('results = [Person("Mark \\"Marky\\" Mark")]', (("Person", 'Mark "Marky" Mark'),), None),
    ("results = [Organization('O\\'Reilly Media')]", (("Organization", "O'Reilly Media"),), None),
    ('results = [Location("C:\\\\Windows\\\\path")]', (("Location", "C:\\Windows\\path"),), None),
    (
        'results = [Person("科瑞·舒爾曼"), Location("美國")]',
        (("Person", "科瑞·舒爾曼"), ("Location", "美國")),
        None,
    ),
    ('results = [Person("𠀋𠂉 🙂")]', (("Person", "𠀋𠂉 🙂"),), None),
    ("results = []", (), None),
    ('```python\nresults = [Person("Obama")]\n```\nDone.', (("Person", "Obama"),), None),
    # truncated code: the whole reply is malformed, scored as empty
    ('results = [Person("Kori Schulman"), Location("United St', (), "truncated"),
    ('results = [Person("Kori Schulman")', (), "truncated"),
    ("I could not find any entities.", (), "no_results"),
    ("results = [Person(Obama)]", (), "not_a_string"),
    ('results = [Person("a" + "b")]', (), "not_a_string"),
    ("results = [Person(\"x\"), __import__('os').system('echo pwned')]", (), "not_an_entity"),
    # unknown class: kept as a (wrong) pair, counted
    (
        'results = [Person("Obama"), Politician("Obama")]',
        (("Person", "Obama"), ("Politician", "Obama")),
        None,
    ),
]


@pytest.mark.parametrize(("reply", "pairs", "malformed"), REPLIES)
def test_replies_are_read_exactly(reply, pairs, malformed):
    pred = read_prediction(reply)
    assert pred.pairs == pairs
    assert pred.malformed == malformed


def test_unknown_classes_are_counted():
    assert read_prediction('results = [Politician("Obama"), Person("Obama")]').unknown_classes == 1


def test_the_reply_is_never_executed(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.chdir(tmp_path)
    read_prediction(f"results = [Person(open({str(marker)!r}, 'w').write('x'))]")
    read_prediction(f"results = [__import__('pathlib').Path({str(marker)!r}).touch()]")
    assert not marker.exists()


def _p(*pairs, malformed=None, unknown=0):
    return Prediction(tuple(pairs), malformed, unknown)


def test_strict_scores_are_exact_on_a_crafted_set():
    en = {"lang": "en", "dataset": "wikineural", "task": "ner"}
    zh = {"lang": "zh", "dataset": "wikineural", "task": "alignment"}
    items = [
        # 2 gold; 1 exact, 1 wrong type (FP Organization + FN Location)
        (
            en,
            [("Person", "Obama"), ("Location", "Paris")],
            _p(("Person", "Obama"), ("Organization", "Paris")),
        ),
        # mention boundary differs: strict -> FP + FN
        (en, [("Person", "Kori Schulman")], _p(("Person", "Kori"))),
        # duplicates are a multiset: gold twice, predicted three times -> 2 TP, 1 FP
        (
            zh,
            [("Location", "美國"), ("Location", "美國")],
            _p(("Location", "美國"), ("Location", "美國"), ("Location", "美國")),
        ),
        # malformed: empty prediction, gold missed, counted
        (zh, [("Person", "奧巴馬")], _p(malformed="truncated")),
        # empty gold, empty prediction: nothing counted but the example
        (en, [], _p()),
        # unknown class counts as a false positive under its own name
        (zh, [("Person", "科瑞·舒爾曼")], _p(("Politician", "科瑞·舒爾曼"), unknown=1)),
    ]
    report = score(items)
    o = report["overall"]
    assert (o["tp"], o["fp"], o["fn"]) == (3, 4, 4)
    assert o["precision"] == pytest.approx(3 / 7)
    assert o["recall"] == pytest.approx(3 / 7)
    assert o["f1"] == pytest.approx(3 / 7)
    assert o["examples"] == 6 and o["malformed"] == 1
    assert o["malformed_by_kind"] == {"truncated": 1}
    assert o["unknown_class_items"] == 1
    by_class = o["by_class"]
    assert by_class["Person"] == {
        "tp": 1,
        "fp": 1,
        "fn": 3,
        "precision": 0.5,
        "recall": 0.25,
        "f1": pytest.approx(1 / 3),
    }
    assert (by_class["Location"]["tp"], by_class["Location"]["fp"], by_class["Location"]["fn"]) == (
        2,
        1,
        1,
    )
    assert (by_class["Organization"]["fp"], by_class["Politician"]["fp"]) == (1, 1)
    en_r, zh_r = report["by_lang"]["en"], report["by_lang"]["zh"]
    assert (en_r["tp"], en_r["fp"], en_r["fn"]) == (1, 2, 2)
    assert (zh_r["tp"], zh_r["fp"], zh_r["fn"]) == (2, 2, 2)
    assert report["by_task"]["alignment"]["malformed"] == 1
    assert report["by_dataset"]["wikineural"]["tp"] == 3


def test_no_predictions_and_no_gold_scores_zero_not_nan():
    o = score([({"lang": "en"}, [], _p())])["overall"]
    assert (o["precision"], o["recall"], o["f1"]) == (0.0, 0.0, 0.0)

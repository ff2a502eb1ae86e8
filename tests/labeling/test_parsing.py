"""Tolerant parsing of explainer and scorer answers: good, fenced, chatty, truncated, garbage, refused."""

import pytest

from finsae.labeling.parsing import ParseError, parse_answers, parse_label
from finsae.labeling.prompts import LABEL_PREFILL


@pytest.mark.parametrize("text, label, description", [
    ('{"label": "central bank rate hikes", "description": "Fires on rate moves by the Fed."}',
     "central bank rate hikes", "Fires on rate moves by the Fed."),
    ('```json\n{"label": "dividend payouts", "description": "Dividends."}\n```', "dividend payouts", "Dividends."),
    ('Sure! Here is my answer:\n{"label": "oil prices", "description": "Crude moves."} Hope it helps.',
     "oil prices", "Crude moves."),
    ('{"Label": "  mergers  ", "Description": "M&A\\nnews"}', "mergers", "M&A news"),
    # Truncated by max_tokens: the label is complete, the description is kept as far as it goes.
    ('{"label": "earnings beats", "description": "Fires on quarterly prof', "earnings beats", "Fires on quarterly prof"),
    ('{"label": "earnings beats"', "earnings beats", ""),
    ("Label: stock tickers\nDescription: Cashtags like $AAPL.", "stock tickers", "Cashtags like $AAPL."),
    ('{"label": "quote \\"marks\\"", "description": ""}', 'quote "marks"', ""),
    ('Label: "stock tickers".', "stock tickers", ""),
])
def test_good_answers(text, label, description):
    assert parse_label(text) == (label, description)


def test_prefilled_answer_is_read_with_its_prefill():
    assert parse_label('bond yields", "description": "Treasuries."}', LABEL_PREFILL) == ("bond yields", "Treasuries.")
    # A model that repeats the opening brace itself is read as is.
    assert parse_label('{"label": "x y", "description": "z"}', LABEL_PREFILL).label == "x y"


@pytest.mark.parametrize("text, why", [
    ("", "empty answer"),
    ("   ", "empty answer"),
    ('{"label": "earnings be', "cut off inside the label"),
    ('bond yiel', "cut off inside the label"),  # with the prefill: the label never closed
    ("asdkj qwe 12 %% zz", "no label found"),
    ("I'm sorry, but I can't help with that.", "refused"),
    ('{"label": ""}', "empty label"),
    ('{"label": "' + "word " * 30 + '"}', "label too long"),
    ('{"answer": 3}', "no label found"),
])
def test_bad_answers_raise(text, why):
    prefill = LABEL_PREFILL if text == "bond yiel" else ""
    with pytest.raises(ParseError, match=why):
        parse_label(text, prefill)


@pytest.mark.parametrize("text, bits", [
    ('{"answers": [1, 0, 1]}', [1, 0, 1]),
    ('```\n{"answers": [true, false, "yes"]}\n```', [1, 0, 1]),
    ("[0, 0, 1]", [0, 0, 1]),
    ("1. yes\n2. no\n3. 1", [1, 0, 1]),
    ('1, 0, 1]}', [1, 0, 1]),  # prefilled with '{"answers": ['
])
def test_scorer_answers(text, bits):
    prefill = '{"answers": [' if text.startswith("1, 0") else ""
    assert parse_answers(text, 3, prefill) == bits


@pytest.mark.parametrize("text, why", [
    ('{"answers": [1, 0]}', "2 answers for 3 examples"),
    ('{"answers": [1, 0, 1, 1]}', "4 answers for 3 examples"),
    ('{"answers": [1, 0, 2]}', "not 0 or 1"),
    ("no idea", "no answers found"),
    ("I cannot do that.", "refused"),
    ('{"answers": [1, 0', "no answers found"),  # truncated list: not a guess
])
def test_bad_scorer_answers_raise(text, why):
    with pytest.raises(ParseError, match=why):
        parse_answers(text, 3)

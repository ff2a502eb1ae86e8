import numpy as np
import pytest

from finsae.activations import ExtractConfig
from finsae.activations.windows import tokenize_corpus
from finsae.errors import ConfigError


def test_short_docs_are_one_window_each(tiny):
    tok = tokenize_corpus(tiny.tokenizer, ["Profit rose.", "Sales fell sharply."], 32, "sentence")
    assert tok.stats.n_windows == 2 and tok.stats.n_docs_windowed == 0
    assert tok.position.min() == 1
    assert list(np.unique(tok.doc)) == [0, 1]


@pytest.mark.parametrize("windowing", ["sentence", "tokens"])
def test_long_doc_is_windowed_and_every_token_kept(tiny, windowing):
    text = " ".join(f"Sentence number {i} says that operating profit rose." for i in range(40))
    full = tiny.tokenizer(text, add_special_tokens=False)["input_ids"]
    tok = tokenize_corpus(tiny.tokenizer, [text], 32, windowing)
    assert tok.token_id.tolist() == full  # nothing dropped, nothing duplicated, order kept
    assert tok.stats.n_docs_windowed == 1 and tok.stats.n_windows == len(tok.win_len) > 1
    assert tok.win_len.max() <= 30  # max_length - [CLS] - [SEP]
    assert tok.position.max() <= 30
    assert tok.win_len.sum() == len(full)
    # windows tile the rows exactly
    assert np.array_equal(tok.win_row[1:], tok.win_row[:-1] + tok.win_len[:-1])


def test_sentence_windows_end_at_sentence_ends(tiny):
    text = " ".join(f"Sentence number {i} says that operating profit rose." for i in range(40))
    tok = tokenize_corpus(tiny.tokenizer, [text], 32, "sentence")
    assert tok.stats.n_hard_cuts == 0
    last_char = tok.char_end[tok.win_row + tok.win_len - 1]
    assert all(text[c - 1] == "." for c in last_char)


def test_overlong_sentence_is_cut_at_a_word_start(tiny):
    text = "a" + " extraordinarily" * 50 + "."
    tok = tokenize_corpus(tiny.tokenizer, [text], 16, "sentence")
    assert tok.stats.n_hard_cuts >= 1
    firsts = tok.win_row[1:]
    assert all(text[tok.char_start[r] - 1] == " " for r in firsts)  # no window starts inside a word


def test_literal_special_token_text_stays_text(tiny):
    tok = tokenize_corpus(tiny.tokenizer, ["It says [CLS] and [SEP] and [PAD]."], 32, "sentence")
    specials = set(tiny.tokenizer.all_special_ids)
    assert not specials & set(tok.token_id.tolist())


def test_empty_docs_are_counted_not_rows(tiny):
    tok = tokenize_corpus(tiny.tokenizer, ["", "Profit rose.", "   "], 32, "sentence")
    assert tok.stats.n_empty_docs == 2 and set(tok.doc.tolist()) == {1}


def test_bad_config_is_refused():
    with pytest.raises(ConfigError):
        ExtractConfig(max_length=2)
    with pytest.raises(ConfigError):
        ExtractConfig(windowing="paragraph")
    with pytest.raises(ConfigError):
        ExtractConfig(dtype="int8")

"""Tokenize documents once and cut long ones into model-sized windows: nothing is ever truncated.

A document of up to ``max_length - 2`` tokens is one window. A longer one is cut into windows of whole
sentences where they fit (``sentence``) or into consecutive token runs (``tokens``); a sentence longer than
a window is cut at the last word start in reach (a "hard cut", counted). Every token of every document lands
in exactly one window, and the counts say how often documents had to be cut.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

# A sentence starts after terminal punctuation (plus closing quotes/brackets) and whitespace, or after a
# line break. Abbreviations ("Corp. said") make extra boundaries; that only makes windows smaller.
_SENTENCE_START = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*\s+|\n\s*")

_TOKENIZE_BATCH = 512


class WindowingStats(NamedTuple):
    """How the corpus was cut into windows (reported; nothing is dropped)."""

    n_docs: int
    """Documents in the corpus."""
    n_empty_docs: int
    """Documents with no tokens at all (empty or whitespace text): they have no rows."""
    n_windows: int
    """Model inputs made."""
    n_docs_windowed: int
    """Documents longer than one window, hence split into several."""
    n_hard_cuts: int
    """Window borders that fall inside a sentence (``tokens`` windowing: every border)."""
    max_doc_tokens: int
    """Tokens in the longest document."""


class Tokenized(NamedTuple):
    """Token rows of a corpus (document order) and the windows that feed them to a model."""

    token_id: np.ndarray
    """[N] int32 vocabulary ids of the real tokens ([CLS]/[SEP]/[PAD] are not rows)."""
    doc: np.ndarray
    """[N] int32 index of the row's document in the corpus."""
    window_id: np.ndarray
    """[N] int32 index of the row's window within its document."""
    position: np.ndarray
    """[N] int16 position in the model input (1 = first token after [CLS])."""
    char_start: np.ndarray
    """[N] int32 first character of the token in its document's text."""
    char_end: np.ndarray
    """[N] int32 one past its last character."""
    win_doc: np.ndarray
    """[W] int32 document of each window (windows in document order)."""
    win_id: np.ndarray
    """[W] int32 index of the window within its document."""
    win_row: np.ndarray
    """[W] int64 first token row of the window."""
    win_len: np.ndarray
    """[W] int32 real tokens in the window."""
    stats: WindowingStats
    """Counts for the report."""


def tokenize_corpus(tokenizer, texts: list[str], max_length: int, windowing: str) -> Tokenized:
    """Tokenize ``texts`` (no special tokens, literal "[CLS]" in text stays text) and window them."""
    cap = max_length - 2
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("ids", "doc", "wid", "pos", "cs", "ce")}
    windows: list[tuple[int, int, int, int]] = []
    empty = windowed = hard_cuts = longest = 0
    row = 0
    for b0 in range(0, len(texts), _TOKENIZE_BATCH):
        batch = texts[b0:b0 + _TOKENIZE_BATCH]
        enc = tokenizer(
            batch, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False,
            return_token_type_ids=False, split_special_tokens=True, truncation=False, verbose=False,
        )
        for j, (ids, offsets) in enumerate(zip(enc["input_ids"], enc["offset_mapping"], strict=True)):
            n = len(ids)
            if n == 0:
                empty += 1
                continue
            doc = b0 + j
            off = np.asarray(offsets, dtype=np.int64).reshape(n, 2)
            bounds, cuts = window_bounds(batch[j], off[:, 0], off[:, 1], cap, windowing)
            longest = max(longest, n)
            windowed += len(bounds) > 1
            hard_cuts += cuts
            wid = np.empty(n, np.int32)
            pos = np.empty(n, np.int16)
            for w, (a, b) in enumerate(bounds):
                wid[a:b] = w
                pos[a:b] = np.arange(1, b - a + 1, dtype=np.int16)
                windows.append((doc, w, row + a, b - a))
            cols["ids"].append(np.asarray(ids, dtype=np.int32))
            cols["doc"].append(np.full(n, doc, np.int32))
            cols["wid"].append(wid)
            cols["pos"].append(pos)
            cols["cs"].append(off[:, 0].astype(np.int32))
            cols["ce"].append(off[:, 1].astype(np.int32))
            row += n

    def cat(name, dtype):
        return np.concatenate(cols[name]) if cols[name] else np.zeros(0, dtype)

    win = np.asarray(windows, dtype=np.int64).reshape(-1, 4)
    stats = WindowingStats(len(texts), empty, len(win), windowed, hard_cuts, longest)
    return Tokenized(
        cat("ids", np.int32), cat("doc", np.int32), cat("wid", np.int32), cat("pos", np.int16),
        cat("cs", np.int32), cat("ce", np.int32),
        win[:, 0].astype(np.int32), win[:, 1].astype(np.int32), win[:, 2].copy(), win[:, 3].astype(np.int32),
        stats,
    )


def window_bounds(
    text: str, starts: np.ndarray, ends: np.ndarray, cap: int, windowing: str
) -> tuple[list[tuple[int, int]], int]:
    """Token ranges ``[a, b)`` of the windows of one document (each ``b - a <= cap``), and the hard-cut count."""
    n = len(starts)
    if n <= cap:
        return [(0, n)], 0
    # A token starts a word when whitespace (or the text start) precedes it: "##" pieces and punctuation
    # glued to a word do not. Cutting there keeps whole words in one window.
    word_start = np.ones(n, bool)
    word_start[1:] = starts[1:] > ends[:-1]
    if windowing == "tokens":
        sentences = [(0, n)]
    else:
        bounds = np.fromiter((m.end() for m in _SENTENCE_START.finditer(text)), dtype=np.int64)
        sent_of_tok = np.searchsorted(bounds, starts, side="right")
        firsts = np.flatnonzero(np.diff(sent_of_tok, prepend=-1)).tolist()
        sentences = list(zip(firsts, firsts[1:] + [n], strict=True))
    out: list[tuple[int, int]] = []
    cuts = 0
    cur = 0
    for a, b in sentences:
        if b - cur <= cap:
            continue
        if a > cur:
            out.append((cur, a))
            cur = a
        while b - cur > cap:
            cut = _last_word_start(word_start, cur, cur + cap)
            out.append((cur, cut))
            cur = cut
            cuts += 1
    out.append((cur, n))
    return out, cuts


def _last_word_start(word_start: np.ndarray, lo: int, hi: int) -> int:
    """Largest ``i`` in ``(lo, hi]`` where a word starts, else ``hi`` (a word longer than a window)."""
    hits = np.flatnonzero(word_start[lo + 1:hi + 1])
    return lo + 1 + int(hits[-1]) if len(hits) else hi

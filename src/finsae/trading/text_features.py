"""Tweet text -> per-tweet features (SAE latents, dense states, sentiment) -> per-row aggregates.

Each unique tweet is one document of a corpus the activation cache encodes once per (model, layers)
(``tweet_corpus``; inference only, see ``finsae.activations.build_activations(..., inference_only=True)``).
Per tweet (``encode_docs``): the token count, the sum and max over its tokens of every SAE latent (sparse CSR:
k of m fire per token) and the sum of its dense hidden states. Per row (``aggregate_rows``), over the tweets
mapped to it by (row, doc) pairs: mean over all their tokens and max over tokens and tweets of each latent,
the token-weighted mean dense state, and the tweet count. The sparse blocks stay CSR end to end.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from finsae.data.trading_calendar import assign_trading_day


class TweetCorpus:
    """The unique tweets as a corpus the activation cache accepts (``name``, ``frame``, ``content_hash``)."""

    def __init__(self, name: str, frame: pd.DataFrame):
        self.name = name
        self.frame = frame
        """``doc_id`` (str, unique), ``text``, ``date`` (created_at, UTC)."""

    def content_hash(self) -> str:
        h = hashlib.sha256(f"tweets:{self.name}\n".encode())
        for doc_id, text, date in zip(self.frame["doc_id"], self.frame["text"], self.frame["date"].astype("datetime64[ns, UTC]").astype("int64"),
                                      strict=True):
            h.update(f"{doc_id}\x1f{text}\x1f{date}\x1e".encode())
        return h.hexdigest()

    def __len__(self) -> int:
        return len(self.frame)


def tweet_corpus(tweets: pd.DataFrame, name: str = "stocknet_tweets") -> tuple[TweetCorpus, np.ndarray]:
    """Unique tweet texts of ``tweets`` (raw-text rows, one per ticker mention) in order of first creation, and,
    per row of ``tweets``, its document index. A text posted again (bots, copies; 11% of StockNet's) is encoded
    once: its encoding depends on the text alone, and each mention keeps its own ``created_at`` for the trading
    day it counts on (``trading_day_pairs``; copies on one row count once). A document's ``date`` is its text's
    first creation. Ordering by first creation makes the corpus of an earlier period a prefix of a later one:
    later tweets never move earlier ones' token rows."""
    created = pd.to_datetime(tweets["created_at"], utc=True).astype("datetime64[ns, UTC]").astype("int64").to_numpy()
    text = tweets["text"].astype(str).to_numpy()
    order = np.lexsort((text, created))
    codes_sorted, uniques = pd.factorize(text[order], sort=False)
    codes = np.empty(len(tweets), dtype=np.int64)
    codes[order] = codes_sorted
    first = order[np.unique(codes_sorted, return_index=True)[1]] if len(order) else order
    frame = pd.DataFrame({
        "doc_id": [f"tw{i}" for i in range(len(uniques))],
        "text": text[first],
        "date": pd.to_datetime(created[first], unit="ns", utc=True),
    })
    return TweetCorpus(name, frame), codes


def trading_day_pairs(tweets: pd.DataFrame, doc_of_tweet: np.ndarray, rows: pd.DataFrame, calendar) -> pd.DataFrame:
    """(row, doc) pairs: each tweet mention goes to the row (its ticker, ``assign_trading_day(created_at)``), i.e.
    the first trading day whose 16:00 New York close is strictly after it. ``rows``: ``ticker``, ``date``."""
    day = assign_trading_day(tweets["created_at"].reset_index(drop=True), calendar)
    m = pd.DataFrame({"ticker": tweets["ticker"].to_numpy(), "date": day.to_numpy(), "doc": doc_of_tweet})
    key = rows[["ticker", "date"]].reset_index(drop=True).assign(row=np.arange(len(rows)))
    return m.merge(key, on=["ticker", "date"], how="inner")[["row", "doc"]].drop_duplicates(ignore_index=True)


class DocFeatures(NamedTuple):
    """Per-tweet encodings of one (model, layer)."""

    n_tokens: np.ndarray
    """[n_docs] real tokens per tweet."""
    sae_sum: sp.csr_matrix | None
    """[n_docs, m] sum over the tweet's tokens of each latent's activation (None without an SAE)."""
    sae_max: sp.csr_matrix | None
    """[n_docs, m] max over the tweet's tokens."""
    dense_sum: np.ndarray
    """[n_docs, d] sum over the tweet's tokens of the hidden state (the rows the SAE encodes)."""


def _reduce_max(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape) -> sp.csr_matrix:
    """CSR of the max of ``vals`` per (row, col) (entries absent = 0; values are >= 0)."""
    if len(vals) == 0:
        return sp.csr_matrix(shape, dtype=np.float32)
    key = rows.astype(np.int64) * shape[1] + cols.astype(np.int64)
    order = np.argsort(key, kind="stable")
    key, vals = key[order], vals[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    mx = np.maximum.reduceat(vals, starts)
    k = key[starts]
    return sp.csr_matrix((mx.astype(np.float32), (k // shape[1], k % shape[1])), shape=shape)


def encode_docs(store, sae, batch_tokens: int = 16384, progress=None) -> DocFeatures:
    """Encode every token row of ``store`` with ``sae`` (or none: dense only) in batches, reduced per document.

    ``progress``: optional callable(n_done_rows) for a progress bar. Docs are the token table's documents."""
    doc = np.asarray(store.table.column("doc"), dtype=np.int64)
    n_docs = len(store.table.docs)
    n, d = len(store), store.d
    n_tok = np.bincount(doc, minlength=n_docs).astype(np.int64)
    dense = np.zeros((n_docs, d), dtype=np.float64)
    sums: list[tuple[np.ndarray, ...]] = []
    maxes: list[tuple[np.ndarray, ...]] = []
    m = sae.cfg.num_latents if sae is not None else 0
    for lo in range(0, n, batch_tokens):
        hi = min(lo + batch_tokens, n)
        x = np.asarray(store.array[lo:hi], dtype=np.float32)
        dd = doc[lo:hi]
        _add_rows(dense, dd, x)
        if sae is not None:
            with torch.no_grad():
                enc = sae.encode(torch.from_numpy(x))
            acts = enc.latent_acts.numpy().astype(np.float32).reshape(-1)
            idx = enc.latent_indices.numpy().astype(np.int32).reshape(-1)
            r = np.repeat(dd.astype(np.int32), enc.latent_acts.shape[1])
            keep = acts > 0
            r, c, v = r[keep], idx[keep], acts[keep]
            # reduce inside the batch (a tweet's tokens are consecutive rows): only boundary tweets repeat later
            s_b = sp.coo_matrix(sp.csr_matrix((v, (r, c)), shape=(n_docs, m), dtype=np.float32))
            m_b = sp.coo_matrix(_reduce_max(r, c, v, (n_docs, m)))
            sums.append((s_b.row, s_b.col, s_b.data))
            maxes.append((m_b.row, m_b.col, m_b.data))
        if progress is not None:
            progress(hi - lo)
    if sae is None:
        return DocFeatures(n_tok, None, None, dense.astype(np.float32))
    cat = lambda parts, i: np.concatenate([p[i] for p in parts]) if parts else np.zeros(0)  # noqa: E731
    s = sp.csr_matrix((cat(sums, 2).astype(np.float32), (cat(sums, 0), cat(sums, 1))), shape=(n_docs, m))
    mx = _reduce_max(cat(maxes, 0), cat(maxes, 1), cat(maxes, 2).astype(np.float32), (n_docs, m))
    s.sum_duplicates()
    return DocFeatures(n_tok, s, mx, dense.astype(np.float32))


def _add_rows(out: np.ndarray, idx: np.ndarray, x: np.ndarray) -> None:
    """out[idx] += x for sorted or unsorted idx (one sparse product instead of a Python loop)."""
    uniq, inv = np.unique(idx, return_inverse=True)
    ind = sp.csr_matrix((np.ones(len(idx)), (inv, np.arange(len(idx)))), shape=(len(uniq), len(idx)))
    out[uniq] += ind @ x.astype(np.float64)


class RowText(NamedTuple):
    """Per-row text aggregates of one (model, layer)."""

    count: np.ndarray
    """[n_rows] tweets mapped to the row."""
    sae_mean: sp.csr_matrix | None
    """[n_rows, m] mean over all the row's tokens of each latent."""
    sae_max: sp.csr_matrix | None
    """[n_rows, m] max over the row's tokens and tweets."""
    dense_mean: np.ndarray
    """[n_rows, d] token-weighted mean hidden state (0 for rows without tweets)."""


def aggregate_rows(pairs: pd.DataFrame, n_rows: int, docs: DocFeatures) -> RowText:
    """Aggregate per-tweet features to rows through (``row``, ``doc``) ``pairs``."""
    n_docs = len(docs.n_tokens)
    a = sp.csr_matrix((np.ones(len(pairs), dtype=np.float64), (pairs["row"].to_numpy(), pairs["doc"].to_numpy())),
                      shape=(n_rows, n_docs))
    count = np.asarray(a.sum(axis=1)).ravel()
    ntok = a @ docs.n_tokens.astype(np.float64)
    inv = np.divide(1.0, ntok, out=np.zeros_like(ntok), where=ntok > 0)
    dense = (np.asarray(a @ docs.dense_sum.astype(np.float64)) * inv[:, None]).astype(np.float32)
    if docs.sae_sum is None:
        return RowText(count, None, None, dense)
    mean = sp.diags(inv) @ (a @ docs.sae_sum.astype(np.float64))
    # max over the row's docs: expand each pair into its doc's nonzeros, then reduce per (row, latent)
    mx = docs.sae_max
    r, dd = pairs["row"].to_numpy(), pairs["doc"].to_numpy()
    lens = np.diff(mx.indptr)[dd]
    starts = mx.indptr[dd]
    pos = np.repeat(starts - np.r_[0, np.cumsum(lens)[:-1]], lens) + np.arange(lens.sum())
    rmax = _reduce_max(np.repeat(r, lens), mx.indices[pos], mx.data[pos], (n_rows, mx.shape[1]))
    return RowText(count, mean.astype(np.float32).tocsr(), rmax, dense)


def sentiment_docs(special, classifier, batch: int = 4096) -> np.ndarray:
    """[n_docs, n_labels] softmax of the domain twin's own classifier head on each tweet's final-layer [CLS]
    (the special store of the model's last layer), averaged over a tweet's windows."""
    arr, tok = special.array, special.tokens
    cls_rows = np.flatnonzero(tok["position"].to_numpy() == 0)
    doc = tok["doc_id"].cat.codes.to_numpy()[cls_rows]
    n_docs = len(tok["doc_id"].cat.categories)
    head = classifier.model
    out = None
    for lo in range(0, len(cls_rows), batch):
        rows = cls_rows[lo:lo + batch]
        h = torch.from_numpy(np.asarray(arr.take(rows), dtype=np.float32))
        with torch.no_grad():
            pooled = head.bert.pooler.activation(head.bert.pooler.dense(h))
            p = torch.softmax(head.classifier(pooled), dim=-1).numpy().astype(np.float64)
        if out is None:
            out = np.zeros((n_docs, p.shape[1]))
        np.add.at(out, doc[lo:lo + batch], p)
    n = np.bincount(doc, minlength=n_docs).astype(np.float64)
    return (out / np.maximum(n, 1)[:, None]).astype(np.float32)


def aggregate_dense(pairs: pd.DataFrame, n_rows: int, per_doc: np.ndarray) -> np.ndarray:
    """Mean over the row's tweets of a per-tweet dense feature (0 for rows without tweets)."""
    a = sp.csr_matrix((np.ones(len(pairs)), (pairs["row"].to_numpy(), pairs["doc"].to_numpy())),
                      shape=(n_rows, per_doc.shape[0]))
    cnt = np.asarray(a.sum(axis=1)).ravel()
    inv = np.divide(1.0, cnt, out=np.zeros_like(cnt), where=cnt > 0)
    return (np.asarray(a @ per_doc.astype(np.float64)) * inv[:, None]).astype(np.float32)

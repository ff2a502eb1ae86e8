"""The token table: one row per real token of a corpus, written once per tokenizer and read by every model
that shares that tokenizer (both models of a pair), so their activation rows line up one for one.

On disk (``root/tokens/<table key>/``)::

    manifest.json     tokenizer fingerprint, corpus name + content hash, max_length, windowing, counts,
                      content_hash (of the rows themselves), file sizes + sha256
    tokens.parquet    per row: token_id int32, doc int32 (index into docs), window_id int32,
                      position int16 (in the model input; 1 = right after [CLS]), char_start, char_end int32
    windows.parquet   per model input: doc, window_id, row_start int64, n_tokens int32
    docs.parquet      doc_id, text (what ``token_context`` shows)
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import finsae
from finsae.activations.atomic import REBUILD_HINT, check_size, is_complete, mark_verified, read_manifest, was_verified
from finsae.atomic import locked, publish, staging_dir, write_json
from finsae.activations.config import ExtractConfig
from finsae.activations.keys import TOKENS_DIR, table_key
from finsae.activations.windows import Tokenized, tokenize_corpus
from finsae.errors import CacheCorruptError, ConfigError, FinsaeError
from finsae.models import tokenizer_fingerprint

log = logging.getLogger(__name__)

TOKENS, WINDOWS, DOCS = "tokens.parquet", "windows.parquet", "docs.parquet"
TOKEN_COLUMNS = ("token_id", "doc_id", "window_id", "position", "char_start", "char_end")


class TokenTable:
    """A finished token table, read lazily (columns on demand, the full frame once)."""

    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest
        self._ctx: tuple[np.ndarray, ...] | None = None

    @classmethod
    def open(cls, path: Path, verify: bool | None = None) -> TokenTable:
        """Open and check the table at ``path``: file sizes always; sha256 when ``verify`` is true, or when
        ``verify`` is None and the table was never fully verified since it was built."""
        path = Path(path)
        manifest = read_manifest(path)
        full = verify if verify is not None else not was_verified(path)
        for f in manifest["files"]:
            _check_file(path / f["file"], f, full)
        if full:
            mark_verified(path)
        return cls(path, manifest)

    @property
    def key(self) -> str:
        return self.manifest["key"]

    @property
    def content_hash(self) -> str:
        """Hash of the rows themselves (ids, documents, windows, positions, offsets): equal hashes, equal rows."""
        return self.manifest["content_hash"]

    def __len__(self) -> int:
        return int(self.manifest["n_tokens"])

    @property
    def n_windows(self) -> int:
        return int(self.manifest["n_windows"])

    def column(self, name: str) -> np.ndarray:
        """One column of ``tokens.parquet`` as a numpy array (``doc`` = document index), without the rest."""
        if "frame" in self.__dict__ and name in self.frame and name != "doc_id":
            return self.frame[name].to_numpy()
        return pq.read_table(self.path / TOKENS, columns=[name]).column(0).to_numpy()

    @functools.cached_property
    def docs(self) -> pd.DataFrame:
        """``doc_id``, ``text`` of every corpus document, in corpus order (row i = document index i)."""
        return pq.read_table(self.path / DOCS).to_pandas()

    @property
    def doc_ids(self) -> pd.Index:
        return pd.Index(self.docs["doc_id"])

    @functools.cached_property
    def frame(self) -> pd.DataFrame:
        """Token rows: ``token_id``, ``doc_id`` (categorical), ``window_id``, ``position``, ``char_start``,
        ``char_end``; row i is row i of every activation store built on this table."""
        raw = pq.read_table(self.path / TOKENS).to_pandas()
        raw["doc_id"] = pd.Categorical.from_codes(raw.pop("doc").to_numpy(), categories=self.doc_ids)
        return raw[list(TOKEN_COLUMNS)]

    @functools.cached_property
    def windows(self) -> pd.DataFrame:
        """One row per model input: ``doc`` (index), ``window_id``, ``row_start``, ``n_tokens``."""
        return pq.read_table(self.path / WINDOWS).to_pandas()

    def special_frame(self, cls_id: int, sep_id: int) -> pd.DataFrame:
        """Rows of the optional special store: [CLS] then [SEP] of each window, in window order."""
        w = self.windows
        n = len(w)
        return pd.DataFrame({
            "token_id": np.tile(np.array([cls_id, sep_id], np.int32), n),
            "doc_id": pd.Categorical.from_codes(np.repeat(w["doc"].to_numpy(), 2), categories=self.doc_ids),
            "window_id": np.repeat(w["window_id"].to_numpy(), 2),
            "position": np.stack([np.zeros(n), w["n_tokens"].to_numpy() + 1], 1).reshape(-1).astype(np.int16),
        })

    def context(self, row: int, width: int = 8, marks: tuple[str, str] = ("«", "»")) -> str:
        """Row ``row``'s token with up to ``width`` tokens each side, from its own window (what the model
        saw), as the original text with the token in ``marks``; "…" where the text goes on."""
        if self._ctx is None:
            self._ctx = tuple(self.column(c) for c in ("doc", "window_id", "char_start", "char_end"))
        doc, win, cs, ce = self._ctx
        if not 0 <= row < len(doc):
            raise IndexError(f"token row {row} out of range for {len(doc)} rows")
        lo, hi = max(row - width, 0), min(row + width + 1, len(doc))
        same = np.flatnonzero((doc[lo:hi] == doc[row]) & (win[lo:hi] == win[row])) + lo
        a, b = int(same[0]), int(same[-1])
        text = self.docs["text"].iat[int(doc[row])]
        left, tok, right = text[cs[a]:cs[row]], text[cs[row]:ce[row]], text[ce[row]:ce[b]]
        flat = [re.sub(r"\s+", " ", s) for s in (left, tok, right)]
        return (
            ("…" if cs[a] > 0 else "") + flat[0] + marks[0] + flat[1] + marks[1] + flat[2]
            + ("…" if ce[b] < len(text.rstrip()) else "")
        )


def token_context(cache, row: int, width: int = 8) -> str:
    """Token row ``row`` of ``cache`` (an ``ActivationStore`` or a ``TokenTable``) in its text, e.g.
    ``"…profit rose to «EUR» 13.1 mn…"``; ``width`` tokens each side, within the model's window."""
    table = getattr(cache, "table", cache)
    return table.context(int(row), width)


def ensure_token_table(tokenizer, corpus, cfg: ExtractConfig, root: Path, rebuild: bool = False) -> TokenTable:
    """The token table of ``corpus`` under ``tokenizer``: reused when present, else built once (locked)."""
    tok_fp = tokenizer_fingerprint(tokenizer)
    max_len = getattr(tokenizer, "model_max_length", None)
    if isinstance(max_len, int) and cfg.max_length > max_len:
        raise ConfigError(f"activations max_length={cfg.max_length} exceeds the tokenizer's {max_len}")
    corpus_hash = corpus.content_hash()
    key = table_key(tok_fp, corpus.name, corpus_hash, cfg.max_length, cfg.windowing)
    entry = Path(root) / TOKENS_DIR / key
    if is_complete(entry):
        try:
            return TokenTable.open(entry, verify=True if rebuild else None)
        except CacheCorruptError:
            if not rebuild:
                raise
            log.warning("token table %s is corrupt; rebuilding it", entry)
    with locked([entry]):
        if not is_complete(entry) or rebuild:
            # Another process may have finished it while we waited; rebuilt only when absent or asked.
            _build(tokenizer, corpus, corpus_hash, cfg, entry, key, tok_fp)
    return TokenTable.open(entry, verify=False)


def _build(tokenizer, corpus, corpus_hash: str, cfg: ExtractConfig, entry: Path, key: str, tok_fp: str) -> None:
    frame = corpus.frame
    doc_ids = frame["doc_id"].astype(str).tolist()
    if len(set(doc_ids)) != len(doc_ids):
        raise FinsaeError(f"corpus {corpus.name!r} has duplicate doc_id values; they must be unique")
    texts = frame["text"].fillna("").astype(str).tolist()
    tok = tokenize_corpus(tokenizer, texts, cfg.max_length, cfg.windowing)
    if len(tok.token_id) == 0:
        raise FinsaeError(f"corpus {corpus.name!r} has no tokens ({len(texts)} documents, all empty)")
    _report(corpus.name, tok, cfg)
    tmp = staging_dir(entry)
    try:
        pq.write_table(pa.table({
            "token_id": tok.token_id, "doc": tok.doc, "window_id": tok.window_id, "position": tok.position,
            "char_start": tok.char_start, "char_end": tok.char_end,
        }), tmp / TOKENS)
        pq.write_table(pa.table({
            "doc": tok.win_doc, "window_id": tok.win_id, "row_start": tok.win_row, "n_tokens": tok.win_len,
        }), tmp / WINDOWS)
        pq.write_table(pa.table({"doc_id": doc_ids, "text": texts}), tmp / DOCS)
        write_json(tmp / "manifest.json", {
            "key": key,
            "finsae_version": finsae.__version__,
            "tokenizer_fingerprint": tok_fp,
            "corpus": {"name": corpus.name, "content_hash": corpus_hash, "n_docs": len(texts)},
            "max_length": cfg.max_length,
            "windowing": cfg.windowing,
            "n_tokens": len(tok.token_id),
            "n_windows": len(tok.win_row),
            "windowing_stats": tok.stats._asdict(),
            "content_hash": _content_hash(tok, doc_ids),
            "files": [_file_info(tmp / f) for f in (TOKENS, WINDOWS, DOCS)],
        })
        publish(tmp, entry, marker=None)  # a content-hash key: only a (damaged) entry of it is replaced
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _report(name: str, tok: Tokenized, cfg: ExtractConfig) -> None:
    s = tok.stats
    log.info(
        "%s: %d docs -> %d tokens in %d windows of <= %d; %d docs were longer and split into windows "
        "(%d cuts inside a sentence); %d empty docs; no token truncated",
        name, s.n_docs, len(tok.token_id), s.n_windows, cfg.max_length, s.n_docs_windowed, s.n_hard_cuts,
        s.n_empty_docs,
    )


def _content_hash(tok: Tokenized, doc_ids: list[str]) -> str:
    h = hashlib.sha256()
    for arr in (tok.token_id, tok.doc, tok.window_id, tok.position, tok.char_start, tok.char_end, tok.win_row):
        h.update(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    h.update("\n".join(doc_ids).encode())
    return h.hexdigest()[:16]


def _file_info(path: Path) -> dict:
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": digest}


def _check_file(path: Path, info: dict, full: bool) -> None:
    check_size(path, info["bytes"], "token table file")
    if full and _file_info(path)["sha256"] != info["sha256"]:
        raise CacheCorruptError(f"token table file {path} is corrupt: checksum mismatch; {REBUILD_HINT}")

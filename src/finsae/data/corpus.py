"""Named text corpora for SAE training and feature selection, with reproducible splits.

Every corpus is one tidy frame (see ``Corpus``). Rules applied by ``load_corpus`` to every
builder's output, so they hold for registered corpora too:

* texts are stripped; empty texts are dropped and exact-duplicate texts are kept once (the
  survivor is the smallest ``(source, doc_id)``, so the choice does not depend on row order);
  both counts are in ``frame.attrs`` (``empty_dropped``, ``duplicates_dropped``);
* ``split``: ``"heldout"`` for the 10% of texts whose sha1 falls in the first tenth of the
  hash range, ``"train"`` for the rest: a property of the text alone;
* rows are ordered by the text's sha1, so ``max_docs=N`` takes the first N in that order: a
  deterministic, source-mixed subset, and a prefix of any larger one;
* StockNet tweets created on/after ``eval_start`` (UTC), or whose trading day (16:00 New York
  close rule) is on/after it, never enter a built-in corpus.

Long documents stay whole; the activation stage windows them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from finsae.data._io import resolve_data_dir
from finsae.data.ag_news import load_ag_news
from finsae.data.brown import load_brown
from finsae.data.phrasebank import load_phrasebank
from finsae.data.reuters import REUTERS_CATEGORIES, load_reuters
from finsae.data.stocknet_tweets import load_stocknet_tweets_raw
from finsae.data.trading_calendar import assign_trading_day, trading_calendar
from finsae.data.twitter_sentiment import load_twitter_sentiment
from finsae.data.wikitext import load_wikitext
from finsae.errors import FinsaeError

EVAL_START = "2015-08-01"   # default evaluation start; StockNet tweets on/after it never enter training/feature-selection corpora
HELDOUT_FRACTION = 0.1
SPLITS: tuple[str, ...] = ("train", "heldout", "all")
FRAME_COLUMNS: tuple[str, ...] = ("doc_id", "text", "source", "date", "label", "split")

Builder = Callable[..., pd.DataFrame]


@dataclass(frozen=True, eq=False)
class Corpus:
    """A named set of documents.

    ``frame`` columns (str = pandas ``str`` dtype): ``doc_id`` (str, unique), ``text`` (str,
    non-empty, stripped), ``source`` (str),
    ``date`` (datetime64[ns, UTC], NaT if undated), ``label`` (object: str or None),
    ``split`` ("train" | "heldout"). ``frame.attrs`` carries the build counts.
    """

    name: str
    frame: pd.DataFrame

    def content_hash(self) -> str:
        """sha256 hex over the name and the (doc_id, text) rows in order; stable across processes."""
        h = hashlib.sha256()
        h.update(f"corpus:{len(self.name)}:{self.name}\n".encode())
        for doc_id, text in zip(self.frame["doc_id"].tolist(), self.frame["text"].tolist(), strict=True):
            d, t = str(doc_id).encode(), str(text).encode()
            h.update(b"%d:%s%d:%s" % (len(d), d, len(t), t))
        return h.hexdigest()

    @property
    def texts(self) -> list[str]:
        """The documents' texts, in frame order."""
        return self.frame["text"].tolist()

    def __len__(self) -> int:
        return len(self.frame)


_BUILDERS: dict[str, Builder] = {}


def register_corpus(name: str, builder: Builder, *, overwrite: bool = False) -> None:
    """Register ``builder`` under ``name``.

    ``builder(data_dir, eval_start)`` (or ``builder(data_dir)``) returns a DataFrame with at least
    ``doc_id`` (str), ``text`` (str) and ``source`` (str), optionally ``date`` (datetime-like;
    naive means UTC) and ``label`` (str or None). ``data_dir`` is a resolved ``Path``,
    ``eval_start`` an ISO date string; a builder that uses dated text must drop everything on or
    after ``eval_start``. ``load_corpus`` applies the cleaning, dedup and split rules.
    Re-registering an existing name needs ``overwrite=True``.
    """
    if not name or not isinstance(name, str):
        raise FinsaeError(f"Corpus name must be a non-empty string, got {name!r}")
    if name in _BUILDERS and not overwrite and _BUILDERS[name] is not builder:
        raise FinsaeError(f"Corpus {name!r} is already registered; pass overwrite=True to replace it.")
    _BUILDERS[name] = builder


def list_corpora() -> list[str]:
    """Names of all registered corpora, sorted."""
    return sorted(_BUILDERS)


def load_corpus(name: str, data_dir: str | Path | None = None, split: str = "train",
                max_docs: int | None = None, eval_start: str = EVAL_START) -> Corpus:
    """Build (cached per process) the corpus ``name`` and return its ``split``.

    ``split``: ``"train"``, ``"heldout"`` or ``"all"``. ``max_docs``: the first N rows in
    text-hash order (deterministic). Unknown ``name`` → ``FinsaeError`` listing the names.
    Missing source files → ``DataMissingError``.
    """
    if name not in _BUILDERS:
        raise FinsaeError(f"Unknown corpus {name!r}. Available: {', '.join(list_corpora())}")
    if split not in SPLITS:
        raise FinsaeError(f"Unknown split {split!r}; choose one of {list(SPLITS)}.")
    if max_docs is not None and (int(max_docs) != max_docs or max_docs < 0):
        raise FinsaeError(f"max_docs must be a non-negative integer or None, got {max_docs!r}")
    start = _eval_start_ts(eval_start).strftime("%Y-%m-%d")
    full = _build(name, _BUILDERS[name], str(resolve_data_dir(data_dir)), start)
    frame = full if split == "all" else full[full["split"] == split]
    if max_docs is not None:
        frame = frame.iloc[: int(max_docs)]
    frame = frame.reset_index(drop=True)
    frame.attrs = {**full.attrs, "split": split, "max_docs": max_docs}
    return Corpus(name=name, frame=frame)


# --------------------------------------------------------------------------- build and normalise


def _eval_start_ts(eval_start) -> pd.Timestamp:
    ts = pd.Timestamp(eval_start)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC")


def _text_hashes(texts: list[str]) -> list[str]:
    return [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]


def split_of_text(text: str, heldout_fraction: float = HELDOUT_FRACTION) -> str:
    """``"heldout"`` or ``"train"`` for one (stripped) text: first 8 hex digits of sha1 < fraction."""
    h = int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16)
    return "heldout" if h < heldout_fraction * 16**8 else "train"


def _call_builder(builder: Builder, data_dir: Path, eval_start: str) -> pd.DataFrame:
    params = inspect.signature(builder).parameters
    accepts_eval = "eval_start" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    return builder(data_dir, eval_start=eval_start) if accepts_eval else builder(data_dir)


@functools.lru_cache(maxsize=32)
def _build(name: str, builder: Builder, data_dir: str, eval_start: str) -> pd.DataFrame:
    """The built corpus: from this process's memory, else from the disk cache (built-in corpora only), else
    parsed from the source files (then cached on disk)."""
    cached = _disk_cache_file(name, builder, data_dir, eval_start)
    if cached is not None and cached.is_file():
        try:
            df = pd.read_pickle(cached)
        except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt, never trusted
            pass
        else:
            with contextlib.suppress(OSError):  # a read-only cache still serves
                os.utime(cached)  # in use: its mtime is when it was last read (see _prune)
            return df
    df = _build_frame(name, builder, data_dir, eval_start)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
            df.to_pickle(tmp)
            os.replace(tmp, cached)
            _prune(cached, name)
        except OSError:
            pass  # a cache that cannot be written costs time, not correctness
    return df


CACHE_UNUSED_DAYS = 14
"""A cache entry of a corpus not read for this long is removed when a new entry of that corpus is written (older
data files, code or pandas leave entries no key will ask for again)."""


def _prune(kept: Path, name: str) -> None:
    """Remove the entries of corpus ``name`` other than ``kept`` unread for :data:`CACHE_UNUSED_DAYS`."""
    cutoff = time.time() - CACHE_UNUSED_DAYS * 86400
    own = re.compile(re.escape(_file_name(name)) + r"-[0-9a-f]{20}\.pkl")
    for entry in kept.parent.iterdir():
        if entry != kept and own.fullmatch(entry.name) and entry.stat().st_mtime < cutoff:
            entry.unlink(missing_ok=True)


CACHE_ENV = "FINSAE_CORPUS_CACHE"
"""Folder of the built-in corpora's disk cache; ``off`` (or empty) disables it. Default: ``cache/corpora`` under
the default artifacts folder (:func:`finsae.paths.default_artifacts_dir`)."""


def corpus_cache_dir() -> Path | None:
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env).expanduser()
    from finsae.paths import default_artifacts_dir

    return default_artifacts_dir() / "cache" / "corpora"


def _disk_cache_file(name: str, builder: Builder, data_dir: str, eval_start: str) -> Path | None:
    """Where the built corpus ``name`` is cached: keyed by the name, ``eval_start``, the data folder and every
    file in it (path, size, mtime), the code of ``finsae.data`` and the pandas version; None for a registered
    (non built-in) corpus or with the cache off. Parsing the raw files takes ~13 s for the demo's two corpora,
    paid once per process by every SAE job before this cache."""
    folder = corpus_cache_dir()
    if folder is None or _BUILTINS.get(name) is not builder:
        return None
    root = Path(data_dir)
    h = hashlib.sha256(f"{name}\0{eval_start}\0{root.resolve()}\0{pd.__version__}\0".encode())
    for f in sorted(root.rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    for src in sorted(Path(__file__).parent.glob("*.py")):  # the builders and the rules above
        h.update(src.read_bytes())
    return folder / f"{_file_name(name)}-{h.hexdigest()[:20]}.pkl"


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)


def _build_frame(name: str, builder: Builder, data_dir: str, eval_start: str) -> pd.DataFrame:
    raw = _call_builder(builder, Path(data_dir), eval_start)
    missing = {"doc_id", "text", "source"} - set(raw.columns)
    if missing:
        raise FinsaeError(f"Corpus builder for {name!r} returned no column(s) {sorted(missing)}")
    n_raw = len(raw)
    df = pd.DataFrame({
        "doc_id": raw["doc_id"].astype("str").to_numpy(dtype=object),
        "text": raw["text"].fillna("").astype("str").str.strip().to_numpy(dtype=object),
        "source": raw["source"].astype("str").to_numpy(dtype=object),
    })
    date = pd.DatetimeIndex(pd.to_datetime(raw["date"]) if "date" in raw.columns else [pd.NaT] * n_raw)
    date = date.tz_localize("UTC") if date.tz is None else date.tz_convert("UTC")
    df["date"] = date.astype("datetime64[ns, UTC]")  # an Index is assigned by position
    label = raw["label"] if "label" in raw.columns else pd.Series(None, index=raw.index)
    df["label"] = pd.Series([None if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v)
                             for v in label], index=df.index, dtype=object)

    empty = df["text"] == ""
    df = df.loc[~empty]
    df = df.sort_values(["text", "source", "doc_id"], kind="stable")
    dup = df["text"].duplicated(keep="first")
    df = df.loc[~dup]
    if df["doc_id"].duplicated().any():
        ex = df.loc[df["doc_id"].duplicated(), "doc_id"].head(3).tolist()
        raise FinsaeError(f"Corpus {name!r}: doc_id values are not unique (e.g. {ex})")

    hashes = _text_hashes(df["text"].tolist())
    heldout = np.array([int(h[:8], 16) for h in hashes]) < HELDOUT_FRACTION * 16**8
    df = df.assign(split=np.where(heldout, "heldout", "train"), _h=hashes)
    df = df.sort_values("_h", kind="stable").drop(columns="_h").reset_index(drop=True)
    for col in ("doc_id", "text", "source", "split"):
        df[col] = df[col].astype("str")
    df = df[list(FRAME_COLUMNS)]
    df.attrs = {**dict(raw.attrs), "name": name, "eval_start": eval_start, "n_raw": n_raw,
                "empty_dropped": int(empty.sum()), "duplicates_dropped": int(dup.sum())}
    return df


def _frame(doc_id, text, source: str, date=None, label=None) -> pd.DataFrame:
    text = np.asarray(text, dtype=object)
    n = len(text)
    dates = (pd.DatetimeIndex([pd.NaT] * n, tz="UTC") if date is None else pd.DatetimeIndex(date))
    return pd.DataFrame({
        "doc_id": np.asarray(doc_id, dtype=object), "text": text, "source": [source] * n,
        "date": dates.astype("datetime64[ns, UTC]"),
        "label": [None] * n if label is None else np.asarray(label, dtype=object),
    })


# --------------------------------------------------------------------------- source builders


def _reuters(data_dir: Path, category: str | None = None) -> pd.DataFrame:
    """Reuters stories: the body, or the title for title-only (BRIEF) items."""
    df = load_reuters(data_dir)
    if category is not None:
        df = df[df["topics"].map(lambda ts: category in ts)]
        labels = [category] * len(df)
    else:
        labels = ["|".join(ts) if ts else None for ts in df["topics"]]
    text = df["body"].where(df["body"].str.strip() != "", df["title"])
    date = df["date"].dt.tz_localize("UTC")
    return _frame([f"reuters:{i}" for i in df["newid"]], text, "reuters", date, labels)


def _phrasebank(data_dir: Path, label: str | None = None) -> pd.DataFrame:
    df = load_phrasebank("50", data_dir)
    ids = [f"phrasebank:{i}" for i in range(len(df))]
    out = _frame(ids, df["sentence"], "phrasebank", None, df["label"])
    return out if label is None else out[out["label"] == label].reset_index(drop=True)


def _twitter_fin(data_dir: Path) -> pd.DataFrame:
    df = load_twitter_sentiment("train", data_dir)
    return _frame([f"twitter_fin_sentiment:train:{i}" for i in range(len(df))], df["text"],
                  "twitter_fin_sentiment", None, df["label_name"])


def stocknet_tweets_before(data_dir: Path, eval_start: str = EVAL_START) -> pd.DataFrame:
    """Raw StockNet tweets safe for training: created before ``eval_start`` (UTC) AND assigned
    to a trading day before it (tweets after the last calendar close are dropped too).

    Returns the ``load_stocknet_tweets_raw`` columns plus ``trading_day`` (datetime64[ns]);
    ``attrs["excluded_after_eval_start"]`` counts the rows removed.
    """
    tweets = load_stocknet_tweets_raw(data_dir)
    start = _eval_start_ts(eval_start)
    day = assign_trading_day(tweets["created_at"], trading_calendar(data_dir))
    keep = (tweets["created_at"] < start) & day.notna() & (day < start.tz_localize(None).normalize())
    out = tweets.loc[keep].assign(trading_day=day[keep]).reset_index(drop=True)
    out.attrs = {**tweets.attrs, "excluded_after_eval_start": int((~keep).sum())}
    return out


def _stocknet(data_dir: Path, eval_start: str = EVAL_START) -> pd.DataFrame:
    df = stocknet_tweets_before(data_dir, eval_start)
    # one tweet listed under several tickers has one id: keep one row per id_str
    df = df.drop_duplicates("id_str", keep="first")
    out = _frame([f"stocknet:{i}" for i in df["id_str"]], df["text"], "stocknet_tweets", df["created_at"])
    out.attrs = dict(df.attrs)
    return out


def _wikitext(data_dir: Path) -> pd.DataFrame:
    df = load_wikitext("all", data_dir)
    ids = [f"wikitext:{s}:{i}" for s, i in zip(df["split"], df.groupby("split").cumcount(), strict=True)]
    return _frame(ids, df["text"], "wikitext")


def _ag(data_dir: Path, label_names: tuple[str, ...]) -> pd.DataFrame:
    df = load_ag_news(data_dir)
    ids = [f"ag_news:{i}" for i in range(len(df))]
    out = _frame(ids, df["text"], "ag_news", None, df["label_name"])
    return out[out["label"].isin(label_names)].reset_index(drop=True)


def _brown(data_dir: Path) -> pd.DataFrame:
    df = load_brown("text", data_dir)
    return _frame([f"brown:{f}" for f in df["fileid"]], df["text"], "brown", None, df["category"])


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    out = pd.concat(frames, ignore_index=True)
    attrs: dict = {}
    for f in frames:
        attrs.update(f.attrs)
    out.attrs = attrs
    return out


def _financial(data_dir: Path, eval_start: str = EVAL_START) -> pd.DataFrame:
    return _concat([_reuters(data_dir), _phrasebank(data_dir), _twitter_fin(data_dir),
                    _stocknet(data_dir, eval_start)])


def _general(data_dir: Path) -> pd.DataFrame:
    return _concat([_wikitext(data_dir), _ag(data_dir, ("World", "Sports", "Sci/Tech")), _brown(data_dir)])


def _register_builtins() -> None:
    register_corpus("financial", _financial)
    register_corpus("general", _general)
    register_corpus("reuters", _reuters)
    register_corpus("phrasebank", _phrasebank)
    register_corpus("stocknet_tweets", _stocknet)
    register_corpus("wikitext", _wikitext)
    register_corpus("twitter_fin_sentiment", _twitter_fin)
    register_corpus("brown", _brown)
    for cat in REUTERS_CATEGORIES:
        register_corpus(f"reuters_{cat}", functools.partial(_reuters, category=cat))
    for lab in ("positive", "negative", "neutral"):
        register_corpus(f"phrasebank_{lab}", functools.partial(_phrasebank, label=lab))
    for short, lab in (("business", "Business"), ("world", "World"), ("sports", "Sports"),
                       ("scitech", "Sci/Tech")):
        register_corpus(f"ag_{short}", functools.partial(_ag, label_names=(lab,)))


_register_builtins()
_BUILTINS: dict[str, Builder] = dict(_BUILDERS)
"""The built-in corpora (the only ones cached on disk: a registered builder's inputs are unknown)."""

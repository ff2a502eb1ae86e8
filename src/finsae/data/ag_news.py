"""AG News test set (Zhang et al. 2015): news titles and descriptions in four classes.

File ``general/ag_news/test.csv.gz`` with columns ``label,title,description`` (the header may be
absent, as in the original CSV); labels 1 World, 2 Sports, 3 Business, 4 Sci/Tech.
"""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path

import pandas as pd

from finsae.data._io import file_key, handout, reads_archive, report_malformed, require_path

AG_NEWS_FILE = "general/ag_news/test.csv.gz"
AG_LABELS: dict[int, str] = {1: "World", 2: "Sports", 3: "Business", 4: "Sci/Tech"}

_APOSTROPHE = re.compile(r" ?(?<!&)#(?:39|146);")  # "Google #39;s" was "Google&#39;s"
_NUM_REF = re.compile(r"(?<!&)#(\d+);")
_NAMED_REF = re.compile(r"(?<![&\w])(quot|amp|lt|gt|hellip|nbsp);")
_TAG = re.compile(r"<[^>]{1,200}>")
_SPACE = re.compile(r"\s+")


def clean_ag_text(text: str) -> str:
    """Undo AG News's mangled entities (``Google #39;s`` → ``Google's``, ``quot;`` → ``"``,
    ``#36;`` → ``$``), strip HTML tags,
    turn ``\\`` (lost line breaks) into spaces and collapse whitespace."""
    text = _APOSTROPHE.sub("'", text)
    text = _NUM_REF.sub(r"&#\1;", text)
    text = _NAMED_REF.sub(r"&\1;", text)
    text = html.unescape(html.unescape(text))  # some entities are escaped twice (&amp;lt;)
    text = _TAG.sub(" ", text).replace("\\", " ")
    return _SPACE.sub(" ", text).strip()


@functools.lru_cache(maxsize=4)
@reads_archive("ag_news")
def _parse(key: tuple[str, int, int], clean: bool) -> pd.DataFrame:
    raw = pd.read_csv(key[0], header=None, dtype=str, keep_default_na=False, compression="gzip")
    if raw.shape[1] != 3:
        raw = raw.iloc[:, :3]
    if raw.iloc[0, 0].strip().lower() == "label":
        raw = raw.iloc[1:]
    raw.columns = ["label", "title", "description"]
    label = pd.to_numeric(raw["label"], errors="coerce")
    ok = label.isin(list(AG_LABELS))
    bad = raw.loc[~ok, "title"].tolist()
    df = pd.DataFrame({"label": label[ok].astype("int64")}).reset_index(drop=True)
    df["label_name"] = df["label"].map(AG_LABELS).astype("str")
    for col in ("title", "description"):
        vals = raw.loc[ok, col].tolist()
        df[col] = pd.Series([clean_ag_text(v) if clean else v for v in vals], dtype="str")
    df["text"] = (df["title"] + "\n" + df["description"]).str.strip().astype("str")
    return report_malformed(df, len(bad), "AG News test.csv", bad)


def load_ag_news(data_dir: str | Path | None = None, clean: bool = True) -> pd.DataFrame:
    """The AG News test set (7,600 rows, 1,900 per class), in file order.

    Returns columns: ``label`` (int64: 1 World, 2 Sports, 3 Business, 4 Sci/Tech),
    ``label_name`` (str), ``title`` (str), ``description`` (str), ``text`` (str: title, newline,
    description). ``clean=True`` applies ``clean_ag_text`` to title and description.
    """
    path = require_path(data_dir, AG_NEWS_FILE, "AG News test CSV", "ag_news")
    return handout(_parse(file_key(path), clean))

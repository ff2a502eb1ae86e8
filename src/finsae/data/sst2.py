"""SST-2 (Socher et al. 2013, as in GLUE): binary movie-review sentiment, the general-domain control task.

Source files: ``general/sst2/{train,dev}.tsv.gz``, gzip-compressed, tab-separated with a header line:
``label\\tsentence`` in train (67,349 phrases and sentences), ``label\\tcontent`` in dev (872 sentences);
label 0 negative, 1 positive. Sentences are lower-cased and tokenised (``it 's``), and hold quote characters,
so the file is split on the first tab of each line rather than read as CSV.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import pandas as pd

from finsae.data._io import (
    CorruptDataError,
    file_key,
    handout,
    reads_archive,
    report_malformed,
    require_path,
    split_lines,
)
from finsae.errors import FinsaeError

SST2_DIR = "general/sst2"
SPLITS: tuple[str, ...] = ("train", "dev")
SST2_LABELS: dict[int, str] = {0: "negative", 1: "positive"}
_TEXT_HEADERS = ("sentence", "content")  # train names its text column "sentence", dev "content"


@functools.cache
@reads_archive("sst2")
def _parse(key: tuple[str, int, int]) -> pd.DataFrame:
    path = Path(key[0])
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read().decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorruptDataError(path, "sst2", f"not UTF-8 text: {e.reason} at byte {e.start}") from None
    lines = split_lines(raw)
    header = lines[0].strip().split("\t") if lines else []
    if len(header) != 2 or header[0] != "label" or header[1] not in _TEXT_HEADERS:
        found = repr(lines[0][:80]) if lines and lines[0] else "an empty first line"
        raise FinsaeError(f"{path}: expected a header line 'label<TAB>sentence' (or 'label<TAB>content'), "
                          f"found {found}; re-download it with "
                          "`python -m finsae.data.fetch --only sst2`.")
    texts, labels, bad = [], [], []
    for line in lines[1:]:
        if not line.strip():
            continue
        label, sep, text = line.partition("\t")
        if not sep or label.strip() not in ("0", "1") or not text.strip():
            bad.append(line)
            continue
        texts.append(text.strip())
        labels.append(int(label))
    if not texts:
        raise FinsaeError(f"{path}: no 'label<TAB>sentence' row with label 0 or 1 in {len(bad)} line(s); "
                          "re-download it with `python -m finsae.data.fetch --only sst2`.")
    df = pd.DataFrame({"text": pd.Series(texts, dtype="str"), "label": pd.Series(labels, dtype="int64")})
    df["label_name"] = df["label"].map(SST2_LABELS).astype("str")
    return report_malformed(df, len(bad), f"SST-2 {path.name}", bad)


def load_sst2(split: str = "train", data_dir: str | Path | None = None) -> pd.DataFrame:
    """One SST-2 split (``"train"`` or ``"dev"``; ``"validation"`` accepted), in file order.

    Returns columns: ``text`` (str), ``label`` (int64: 0 negative, 1 positive), ``label_name`` (str).
    ``attrs["malformed_rows"]``: lines without a tab, with an empty text or a label outside {0, 1}.
    Sizes: train 67,349, dev 872.
    """
    split = {"validation": "dev", "valid": "dev", "val": "dev"}.get(split, split)
    if split not in SPLITS:
        raise FinsaeError(f"Unknown SST-2 split {split!r}; choose one of {list(SPLITS)}.")
    path = require_path(data_dir, f"{SST2_DIR}/{split}.tsv.gz", f"SST-2 {split} TSV", "sst2")
    return handout(_parse(file_key(path)))

"""The real data folder with AG News cut to a few articles per class, for the analysis at test scale.

The analysis's genre contrast (AG News Business vs World + Sports + Sci/Tech) takes every AG article outside
the SAE mix, about 7,000 passages, and no ``analysis.*`` knob caps it; through a bert-base-shaped model on two
busy cores (~150 tokens/s a core) that alone is over half an hour per model. Every other file is the shared
one (symlinked); the AG rows kept are the file's own, in its order."""

from __future__ import annotations

import gzip
from pathlib import Path

AG_NEWS = Path("general") / "ag_news" / "test.csv.gz"


def data_with_small_ag_news(data_dir: Path, out: Path, per_class: int) -> Path:
    """``out``: ``data_dir``'s folders linked, ``general/ag_news/test.csv.gz`` its first ``per_class`` rows of
    each class (AG's CSV has no quoted newlines: one article a line)."""
    data_dir = Path(data_dir).resolve()
    for entry in data_dir.iterdir():
        if entry.name != "general":
            (out / entry.name).parent.mkdir(parents=True, exist_ok=True)
            (out / entry.name).symlink_to(entry)
    for entry in (data_dir / "general").iterdir():
        if entry.name != AG_NEWS.parent.name:
            (out / "general").mkdir(parents=True, exist_ok=True)
            (out / "general" / entry.name).symlink_to(entry)
    kept, seen = [], {}
    with gzip.open(data_dir / AG_NEWS, "rt", encoding="utf-8") as f:
        for line in f:
            label = line.split(",", 1)[0].strip('"')
            if seen.get(label, 0) < per_class:
                seen[label] = seen.get(label, 0) + 1
                kept.append(line)
    (out / AG_NEWS).parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out / AG_NEWS, "wt", encoding="utf-8") as f:
        f.writelines(kept)
    return out

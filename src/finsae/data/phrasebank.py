"""Financial PhraseBank (Malo et al. 2014): sentences from financial news with sentiment labels.

Source file: ``financial_phrasebank/FinancialPhraseBank-v1.0.zip`` holding
``Sentences_{50,66,75,All}Agree.txt``: latin-1, CRLF and some lone-CR line ends, one
``sentence@label`` per line (split on the LAST ``@``). Each file holds the sentences on which at
least that share of annotators agreed, so 50Agree ⊇ 66Agree ⊇ 75Agree ⊇ AllAgree.
"""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path

import pandas as pd

from finsae.data._io import file_key, handout, reads_archive, report_malformed, require_path, split_lines
from finsae.errors import DataMissingError, FinsaeError

PHRASEBANK_ZIP = "financial_phrasebank/FinancialPhraseBank-v1.0.zip"
AGREEMENTS: tuple[str, ...] = ("50", "66", "75", "All")
LABELS: tuple[str, ...] = ("positive", "negative", "neutral")
"""The sentiment classes in class-id order (FinBERT's head: 0 positive, 1 negative, 2 neutral); the one label order
of the project (the twin's classifier uses it)."""
_AGREEMENT_PCT = {"50": 50, "66": 66, "75": 75, "All": 100}


def _norm_agreement(agreement) -> str:
    a = str(agreement).strip()
    a = a[: -len("Agree")] if a.lower().endswith("agree") else a
    a = "All" if a.lower() in ("all", "100") else a
    if a not in AGREEMENTS:
        raise FinsaeError(f"Unknown PhraseBank agreement {agreement!r}; choose one of {list(AGREEMENTS)}.")
    return a


@functools.cache
@reads_archive("phrasebank")
def _parse(key: tuple[str, int, int], agreement: str) -> pd.DataFrame:
    path = Path(key[0])
    with zipfile.ZipFile(path) as zf:
        wanted = f"Sentences_{agreement}Agree.txt"
        members = [n for n in zf.namelist() if n.endswith(wanted) and "__MACOSX" not in n]
        if not members:
            raise DataMissingError(f"PhraseBank member {wanted}", f"{path}!{wanted}",
                                   "The zip looks incomplete; re-download it with "
                                   "`python -m finsae.data.fetch --only phrasebank`.")
        raw = zf.read(members[0]).decode("latin-1")
    sentences, labels, bad = [], [], []
    for line in split_lines(raw):
        if not line.strip():
            continue
        sentence, sep, label = line.rpartition("@")
        label = label.strip().lower()
        if not sep or label not in LABELS or not sentence.strip():
            bad.append(line)
            continue
        sentences.append(sentence.strip())
        labels.append(label)
    df = pd.DataFrame({"sentence": pd.Series(sentences, dtype="str"), "label": pd.Series(labels, dtype="str")})
    return report_malformed(df, len(bad), f"PhraseBank {wanted}", bad)


def load_phrasebank(agreement: str | int = "50", data_dir: str | Path | None = None) -> pd.DataFrame:
    """Sentences of one PhraseBank agreement level, in file order.

    ``agreement``: ``"50"``, ``"66"``, ``"75"`` or ``"All"`` (also accepts 50, ``"50Agree"``, ``"all"``).

    Returns columns: ``sentence`` (str), ``label`` (str: positive/neutral/negative).
    ``attrs["malformed_rows"]``: lines that were not ``sentence@label``. 50Agree has 4,846 rows.
    """
    a = _norm_agreement(agreement)
    path = require_path(data_dir, PHRASEBANK_ZIP, "Financial PhraseBank zip", "phrasebank")
    return handout(_parse(file_key(path), a))


def load_phrasebank_with_agreement(data_dir: str | Path | None = None) -> pd.DataFrame:
    """Every 50Agree sentence with the highest agreement level whose file also holds it.

    Returns columns: ``sentence`` (str), ``label`` (str), ``max_agreement`` (str: "50", "66",
    "75" or "All"), ``agreement_pct`` (int64: 50, 66, 75 or 100). Filter
    ``max_agreement == "All"`` for the AllAgree subset. A (sentence, label) pair counts as
    present at a level when that file holds the same pair.
    """
    base = load_phrasebank("50", data_dir)
    best = pd.Series("50", index=base.index, dtype="str")
    pairs = list(zip(base["sentence"], base["label"], strict=True))
    for a in AGREEMENTS[1:]:
        sub = load_phrasebank(a, data_dir)
        present = set(zip(sub["sentence"], sub["label"], strict=True))
        mask = [p in present for p in pairs]
        best[mask] = a
    out = base.assign(max_agreement=best, agreement_pct=best.map(_AGREEMENT_PCT).astype("int64"))
    out.attrs = dict(base.attrs)
    return out

"""The seed's claim, tested: do the latents fine-tuning changed carry return information that the twin's own
sentiment and the unchanged latents do not?

Every set with the ``changed_sae`` block is paired with the same set with that block swapped for
``unchanged_sae``, ``random_sae`` and ``sentiment`` (the twin classifier's probabilities), where those ran.
Per pair, per book and period, the paired daily differences (same days, same folds) of the rank IC of the
model the book trades and of the book's net return, with a day-block bootstrap interval of their mean
(:func:`finsae.trading.metrics.mean_ci`): ``claim.csv`` (:mod:`finsae.trading.artifacts`), and
:func:`claim_paragraph`, the answer in words, from that table alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from finsae.trading.blocks import pool_block, swap_block
from finsae.trading.metrics import daily_rank_ic, mean_ci

CHANGED = pool_block("changed")
BASELINES = (("unchanged", pool_block("unchanged")), ("random", pool_block("random")),
             ("sentiment", "sentiment"))
"""(comparison, the block that replaces ``changed_sae``) in the order the paragraph reads them."""
METRICS = ("rank_ic", "net_return")
COLUMNS = ("comparison", "set", "baseline", "metric", "strategy", "period", "diff", "diff_lo", "diff_hi",
           "mean_set", "mean_baseline", "n_days", "changed")
"""``claim.csv``: per (comparison, set, metric, strategy, period) the mean paired daily difference ``diff``
(set minus baseline) with its 95% day-block interval, both means, the days paired, and ``changed`` (what
``features.changed`` called changed)."""


def claim_pairs(sets) -> list[tuple[str, str, str]]:
    """(comparison, set, baseline) for every set of ``sets`` with the ``changed_sae`` block and each of its
    baselines that is in ``sets`` too."""
    sets = list(sets)
    out = []
    for name in sets:
        for comparison, block in BASELINES:
            other = swap_block(name, CHANGED, block)
            if other is not None and other in sets:
                out.append((comparison, name, other))
    return out


def _daily(rows: pd.DataFrame, predictions: pd.DataFrame, returns: pd.DataFrame, name: str, kind: str,
           book_column) -> dict[str, pd.Series]:
    p = predictions[predictions["set"] == name]
    r = p["row"].to_numpy()
    ic = daily_rank_ic(p[book_column(kind, p)].to_numpy(), rows["ret_exec"].to_numpy()[r],
                       rows["date"].to_numpy()[r])
    mine = (returns["set"] == name) & (returns["strategy"] == kind)
    if "book" in returns:
        mine &= returns["book"] == "daily"  # the claim compares the signals, so the same daily book
    net = returns[mine].set_index("date")["net"]
    return {"rank_ic": ic, "net_return": net}


def claim_table(rows: pd.DataFrame, predictions: pd.DataFrame, returns: pd.DataFrame, kinds, book_column,
                eval_start: str, block_days: int, draws: int, changed: str) -> pd.DataFrame:
    """The paired differences (see the module) of every pair of :func:`claim_pairs` over the sets of
    ``predictions``. ``returns``: ``Backtests.returns``; ``book_column(kind, set's predictions)``: the
    prediction column the book ``kind`` trades; ``changed``: ``features.changed``. Empty (with its columns)
    without a pair."""
    start = pd.Timestamp(eval_start)
    out = []
    for comparison, name, other in claim_pairs(predictions["set"].unique()):
        for kind in kinds:
            a = _daily(rows, predictions, returns, name, kind, book_column)
            b = _daily(rows, predictions, returns, other, kind, book_column)
            for metric in METRICS:
                both = pd.concat([a[metric].rename("a"), b[metric].rename("b")], axis=1,
                                 join="inner").dropna()
                both.index = pd.to_datetime(both.index)
                for period, x in (("full", both), ("headline", both[both.index >= start])):
                    if len(x) < 3:
                        continue
                    d = x["a"] - x["b"]
                    lo, hi = mean_ci(d, block_days, draws)
                    out.append({"comparison": comparison, "set": name, "baseline": other, "metric": metric,
                                "strategy": kind, "period": period, "diff": float(d.mean()), "diff_lo": lo,
                                "diff_hi": hi, "mean_set": float(x["a"].mean()),
                                "mean_baseline": float(x["b"].mean()), "n_days": int(len(x)),
                                "changed": changed})
    return pd.DataFrame(out, columns=list(COLUMNS))


# -- the answer in words -----------------------------------------------------------------------------------
def _verdict(row) -> int:
    """+1: the interval lies above 0; -1: below; 0: it holds 0 (or is undefined)."""
    if np.isfinite(row["diff_lo"]) and row["diff_lo"] > 0:
        return 1
    if np.isfinite(row["diff_hi"]) and row["diff_hi"] < 0:
        return -1
    return 0


def _phrase(row, scale: float, digits: int, unit: str) -> str:
    how = {1: "above", -1: "below", 0: "indistinguishable from"}[_verdict(row)]
    lo, mid, hi = (f"{row[k] * scale:+.{digits}f}" for k in ("diff_lo", "diff", "diff_hi"))
    return f"{mid}{unit} [{lo}, {hi}] against {row['baseline']} ({how} it)"


_SAID = {"unchanged": "the unchanged latents", "sentiment": "the twin's sentiment"}


def _answer(verdicts: dict[str, int]) -> tuple[str, str]:
    """(Yes / No / No evidence, why) from the rank-IC verdicts against the unchanged latents and the
    sentiment."""
    if len(verdicts) == 2 and all(v == 1 for v in verdicts.values()):
        return "Yes", "their daily rank IC exceeds both the unchanged latents' and the twin's sentiment's"
    below = [_SAID[c] for c, v in verdicts.items() if v == -1]
    if below:
        return "No", "their daily rank IC falls short of " + " and ".join(below)
    why = []
    above = [_SAID[c] for c, v in verdicts.items() if v == 1]
    held = [_SAID[c] for c, v in verdicts.items() if v == 0]
    missing = [dict(BASELINES)[c] for c in _SAID if c not in verdicts]
    if above:
        why.append("their daily rank IC exceeds " + " and ".join(above))
    if held:
        why.append("the rank-IC difference's interval holds 0 against " + " and ".join(held))
    if missing:
        why.append("no " + " or ".join(missing) + " set ran beside them")
    return "No evidence", "; ".join(why)


def claim_paragraph(table: pd.DataFrame, strategy: str = "long_short") -> str:
    """One paragraph answering the claim from ``table`` (:func:`claim_table`): the headline period when it has
    rows (else the full one), the first changed set, the book ``strategy`` (else the table's first). Yes only
    when the rank-IC difference's interval lies above 0 against both the unchanged latents and the twin's
    sentiment; no when it lies below 0 against either; otherwise there is no evidence either way."""
    if table.empty:
        return ("The seed's claim was not tested: no run paired a changed_sae set with its unchanged_sae, "
                "random_sae or sentiment twin.")
    period = "headline" if (table["period"] == "headline").any() else "full"
    t = table[table["period"] == period]
    if strategy not in set(t["strategy"]):
        strategy = str(t["strategy"].iloc[0])
    name = str(t["set"].iloc[0])
    t = t[(t["set"] == name) & (t["strategy"] == strategy)]
    ic = {r["comparison"]: r for r in t[t["metric"] == "rank_ic"].to_dict("records")}
    net = {r["comparison"]: r for r in t[t["metric"] == "net_return"].to_dict("records")}
    answer, why = _answer({c: _verdict(ic[c]) for c in ("unchanged", "sentiment") if c in ic})
    n_days = int(next(iter(ic.values()))["n_days"]) if ic else 0
    changed = str(t["changed"].iloc[0])
    ic_text = "; ".join(_phrase(ic[c], 1.0, 4, "") for c, _ in BASELINES if c in ic)
    net_text = "; ".join(_phrase(net[c], 1e4, 2, " bps") for c, _ in BASELINES if c in net)
    return (f"Do the latents fine-tuning changed ({changed}) carry return information that the twin's "
            f"sentiment and the unchanged latents do not? {answer}: {why}. Over the {period} period "
            f"({n_days} paired days), set {name}, {strategy} book, mean daily rank-IC difference "
            f"(95% day-block interval): "
            f"{ic_text}. Mean daily net-return difference: {net_text}.")

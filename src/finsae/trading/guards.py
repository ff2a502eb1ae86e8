"""Checks the pipeline runs on its own records before it publishes anything (a failure is a bug: it raises)."""

from __future__ import annotations

import numpy as np
import pandas as pd


class LeakageError(RuntimeError):
    """A fitted object saw data from the window it is evaluated on."""


def check_fit_windows(windows: pd.DataFrame, calendar, gap: int) -> None:
    """Every recorded fit ends at least ``gap`` trading days before its test window starts, and its
    validation days end before the test days too."""
    if windows.empty:
        return
    cal = pd.DatetimeIndex(calendar)
    fit_end = cal.searchsorted(pd.DatetimeIndex(windows["fit_end"]))
    val_end = cal.searchsorted(pd.DatetimeIndex(windows["val_end"]))
    test_start = cal.searchsorted(pd.DatetimeIndex(windows["test_start"]))
    bad = (test_start - fit_end <= gap) | (val_end >= test_start)
    if bad.any():
        raise LeakageError(f"{int(bad.sum())} fitted object(s) end within {gap} trading days of their test window: "
                           f"{windows[np.asarray(bad)].head(3).to_dict('records')}")


def check_text_fit(sae_text_end: str, headline_start: str) -> None:
    """The SAEs saw only text dated before ``sae_text_end``; the headline period must not start before it."""
    if pd.Timestamp(headline_start) < pd.Timestamp(sae_text_end):
        raise LeakageError(f"the headline period starts {headline_start}, before the SAEs' text ends ({sae_text_end})")

"""Checks the pipeline runs on its own records before it publishes anything (a failure is a bug: it raises)."""

from __future__ import annotations

import numpy as np
import pandas as pd


class LeakageError(RuntimeError):
    """A fitted object saw data from the window it is evaluated on."""


def check_fit_windows(windows: pd.DataFrame, calendar, gap: int) -> None:
    """Every fitted object was given rows that end more than ``gap`` trading days before its test window starts,
    and early-stopping rows that end before it (ACL18's dev split abuts its test split). Checked on the days of the rows actually passed to each fit (``rows_end``,
    ``val_rows_end``, recorded by ``run_fold`` from the arrays it fits), not on the fold's bounds."""
    if windows.empty:
        return
    cal = pd.DatetimeIndex(calendar)
    pos = lambda col: cal.searchsorted(pd.DatetimeIndex(windows[col]))  # noqa: E731
    test_start = pos("test_start")
    rows_end = pos("rows_end" if "rows_end" in windows else "fit_end")
    bad = test_start - rows_end <= gap
    if "val_rows_end" in windows:
        has_val = windows["val_rows_end"].notna().to_numpy()
        val = windows["val_rows_end"].where(has_val, windows["test_start"])
        bad |= has_val & (cal.searchsorted(pd.DatetimeIndex(val)) >= test_start)
    else:
        bad |= pos("val_end") >= test_start
    if bad.any():
        raise LeakageError(f"{int(bad.sum())} fitted object(s) were given rows within {gap} trading days of their "
                           f"test window: {windows[np.asarray(bad)].head(3).to_dict('records')}")


def check_text_fit(sae_text_end: str, headline_start: str) -> None:
    """The SAEs saw only text dated before ``sae_text_end``; the headline period must not start before it."""
    if pd.Timestamp(headline_start) < pd.Timestamp(sae_text_end):
        raise LeakageError(f"the headline period starts {headline_start}, before the SAEs' text ends ({sae_text_end})")

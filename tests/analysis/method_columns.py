"""The findings' side-by-side heading for the registered methods (tests never count the registry by
hand)."""

from __future__ import annotations


def n_method_columns() -> int:
    """Methods with a column in the findings' side-by-side table."""
    from finsae.analysis.methods import METHODS

    return sum(bool(m.findings_header) for m in METHODS.values())


def side_by_side_heading() -> str:
    """The side-by-side section's heading for the methods registered now (a test's toy method included)."""
    from finsae.analysis.findings import COUNT_WORDS

    n = n_method_columns()
    return f"## {COUNT_WORDS.get(n, str(n))} methods side by side"

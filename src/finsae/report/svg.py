"""Small inline SVG figures for the report's static pages (drawn as text: a matplotlib figure per latent would
be far too slow at thousands of latents)."""

from __future__ import annotations

import html

import numpy as np

from finsae.report.tables import fmt_value

esc = html.escape


def bars_svg(counts: np.ndarray, edges: np.ndarray, xlabel: str, mark: float | None = None) -> str:
    """A small inline SVG histogram, its range and ``xlabel`` under it (``mark``: a line at that x)."""
    w, h = 260, 56
    top = float(counts.max()) if len(counts) and counts.max() > 0 else 1.0
    bw = w / max(len(counts), 1)
    bars = "".join(f'<rect x="{i * bw:.1f}" y="{h - c / top * h:.1f}" width="{bw - 1:.1f}" '
                   f'height="{c / top * h:.1f}" fill="#3a6ea5"/>' for i, c in enumerate(counts) if c > 0)
    if mark is not None and edges[-1] > edges[0]:
        x = min(max((mark - edges[0]) / (edges[-1] - edges[0]), 0.0), 1.0) * w
        bars += f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{h}" stroke="#d2691e" stroke-width="2"/>'
    lo, hi = esc(fmt_value(float(edges[0]))), esc(fmt_value(float(edges[-1])))
    return (f'<div><svg width="{w}" height="{h + 14}" role="img" aria-label="{esc(xlabel)}">{bars}'
            f'<text x="0" y="{h + 12}" font-size="10">{lo}</text><text x="{w}" y="{h + 12}" font-size="10" '
            f'text-anchor="end">{hi}</text></svg><div class="ctx">{esc(xlabel)}</div></div>')

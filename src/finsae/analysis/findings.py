"""``findings.md``: the study's answer written from the measured numbers, beside the write-up's three claims.

It leads with the activation lens per layer (method 0, :mod:`finsae.analysis.methods.lens`: where the
twin's activations differ from the base's), then whether that is financial (the finance pair against the
control pair and the fine-tune seed spread, :mod:`finsae.analysis.comparison`), then the registered diffing
methods (:data:`finsae.analysis.methods.METHODS`) side by side per layer, one column and one "where does
fine-tuning act" signal each; a layer where a method did not run says "not run". The other sections read the
independent-SAE comparison's columns.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy.stats import spearmanr

CLAIMS = (
    ("overlap", "Feature overlap falls from 70% at layer 0 to 5% at layer 11",
     "latent #f of one SAE compared with latent #f of another, separately trained SAE (indices of two SAEs mean "
     "nothing to each other), on 36 hand-written sentences, no baseline"),
    ("specialized", "1,200+ specialized financial features",
     "no control for how many latents two seeds of the same model fail to share"),
    ("improvement", "195-436% improvement of financial features",
     "a ratio of raw activations on a handful of sentences; activation scales differ between SAEs"),
)
NOT_RUN = "not run"
COUNT_WORDS = {2: "Two", 3: "Three", 4: "Four", 5: "Five", 6: "Six"}


def _num(x) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return math.nan
    return x


def fmt(x, spec="{:.3f}") -> str:
    """``x`` formatted, ``n/a`` when it is not a finite number."""
    x = _num(x)
    return "n/a" if not math.isfinite(x) else spec.format(x)


_f = fmt


def _get(row, col):
    return row[col] if col in row.index else math.nan


def ci_text(row, col, spec="{:.3f}") -> str:
    """``value [low, high]`` from ``col_ci_low``/``col_ci_high`` or ``col_lo``/``col_hi``."""
    lo, hi = (f"{col}_ci_low", f"{col}_ci_high") if f"{col}_ci_low" in row.index else (f"{col}_lo", f"{col}_hi")
    if not math.isfinite(_num(_get(row, col))):
        return "n/a"
    return f"{_f(_get(row, col), spec)} [{_f(_get(row, lo), spec)}, {_f(_get(row, hi), spec)}]"


_ci = ci_text


def _has(layers: pd.DataFrame, col: str) -> bool:
    return col in layers and pd.to_numeric(layers[col], errors="coerce").notna().any()


def _methods():
    from finsae.analysis.methods import METHODS

    return METHODS


def method_signals(layers: pd.DataFrame) -> pd.DataFrame:
    """Per layer, each method's measure of where fine-tuning acts (NaN where the method did not run), one
    column per registered method that has one (:meth:`finsae.analysis.methods.base.DiffingMethod.signal`)."""
    out = {"layer": layers["layer"].astype(int)}
    for name, method in _methods().items():
        sig = method.signal(layers)
        if sig is not None:
            out[name] = sig
    return pd.DataFrame(out)


def _agreement(layers: pd.DataFrame) -> list[str]:
    sig = method_signals(layers)
    names = {n: m.signal_label for n, m in _methods().items() if n in sig}
    out = []
    ran = [m for m in names if sig[m].notna().any()]
    for m in names:
        if m not in ran:
            out.append(f"- {names[m]}: {NOT_RUN}.")
            continue
        s = sig.dropna(subset=[m])
        top = s.loc[s[m].idxmax()]
        out.append(f"- {names[m]}: largest at layer {int(top['layer'])} ({_signal_text(top[m])}); by layer "
                   + ", ".join(f"L{int(r['layer'])} {_signal_text(r[m])}" for _, r in s.iterrows()) + ".")
    for i, a in enumerate(ran):
        for b in ran[i + 1:]:
            both = sig[["layer", a, b]].dropna()
            if len(both) >= 3 and both[a].nunique() > 1 and both[b].nunique() > 1:
                rho, p = spearmanr(both[a], both[b])
                out.append(f"- {a} vs {b}: Spearman rank correlation over {len(both)} layers {rho:.2f} "
                           f"(p = {p:.2f}; few layers: read as a direction, not a test).")
            else:
                out.append(f"- {a} vs {b}: fewer than 3 layers with both (or no spread): no rank "
                           "correlation.")
    return out


def _signal_text(x) -> str:
    """A signal value: whole numbers (counts) as such, anything else to 3 significant digits."""
    x = _num(x)
    return _f(x, "{:.0f}") if math.isfinite(x) and float(x).is_integer() else _f(x, "{:.3g}")


def side_by_side(layers: pd.DataFrame) -> list[str]:
    """The methods' side-by-side table: one column per registered method with a findings header."""
    methods = [m for m in _methods().values() if m.findings_header]
    lines = ["| layer | " + " | ".join(m.findings_header for m in methods) + " |",
             "|---|" + "---|" * len(methods)]
    for _, r in layers.iterrows():
        cells = [m.findings_cell(r) for m in methods]
        lines.append(f"| {int(r['layer'])} | " + " | ".join(NOT_RUN if c is None else c for c in cells) + " |")
    return lines


AFFINE_R2_HIGH = 0.9
"""Affine R² at or above which the lens answer reads a layer as (nearly) an affine image of the base."""


def _layer_list(layers: pd.DataFrame, mask) -> str:
    return ", ".join(f"L{int(v)}" for v in layers.loc[mask, "layer"]) or "none"


def _by_layer(layers: pd.DataFrame, col: str) -> str:
    return ", ".join(f"L{int(r['layer'])} {_f(r[col])}" for _, r in layers.iterrows())


def lens_answer(layers: pd.DataFrame) -> str:
    """The lens's answer in sentences: where the change is largest, where the twin stays an affine image of
    the base, where financial text changes more than general text (interval above 0), and [CLS]."""
    def col(name):
        return pd.to_numeric(layers[name], errors="coerce") if name in layers else pd.Series(math.nan,
                                                                                              layers.index)

    rel, r2 = col("lens_rel_change"), col("lens_affine_r2")
    have = layers[rel.notna()]
    top = layers.loc[rel.idxmax()]
    out = [f"The twin's activations differ most at layer {int(top['layer'])} (relative change "
           f"{_ci(top, 'lens_rel_change')}); by layer {_by_layer(have, 'lens_rel_change')}.",
           f"An affine map of the base explains the twin (held-out R² >= {AFFINE_R2_HIGH}) at "
           f"{_layer_list(layers, r2 >= AFFINE_R2_HIGH)}; less at "
           f"{_layer_list(layers, r2 < AFFINE_R2_HIGH)}.",
           "Financial text changes more than general text (financial − general relative change, interval "
           f"above 0) at {_layer_list(layers, col('lens_rel_change_fin_minus_gen_lo') > 0)}; less (interval "
           f"below 0) at {_layer_list(layers, col('lens_rel_change_fin_minus_gen_hi') < 0)}."]
    if _has(layers, "lens_cls_rel_change"):
        out.append("[CLS], the position the twin's classifier reads: relative change "
                   f"{_by_layer(have, 'lens_cls_rel_change')}.")
    else:
        out.append("[CLS] was not measured: the held-out cache holds no [CLS] rows (analyse with "
                   "`activations.store_special=true`).")
    return " ".join(out)


def _lens_table_row(r: pd.Series) -> str:
    cls = "not stored"
    if math.isfinite(_num(_get(r, "lens_cls_rel_change"))):
        cls = " / ".join(_f(_get(r, f"lens_cls_{c}")) for c in ("rel_change", "cka", "affine_r2"))
    cells = [str(int(r["layer"])), _ci(r, "lens_rel_change"), _f(_get(r, "lens_rel_change_financial")),
             _f(_get(r, "lens_rel_change_general")), _ci(r, "lens_rel_change_fin_minus_gen", "{:+.3f}"),
             _ci(r, "lens_cka"), _ci(r, "lens_affine_r2"),
             " → ".join(_f(_get(r, f"lens_top3_share_{m}"), "{:.2f}") for m in ("base", "twin")),
             _f(_get(r, "lens_window_share_twin"), "{:.2f}"), cls]
    return "| " + " | ".join(cells) + " |"


def lens_section(layers: pd.DataFrame) -> list[str]:
    """The findings' lead: the activation lens per layer (``lens_*`` columns of ``layers.parquet``)."""
    lines = ["## Where the twin differs: the activation lens (method 0)", ""]
    if not _has(layers, "lens_rel_change"):
        return lines + [f"The activation lens: {NOT_RUN}."]
    lines += [
        "Per layer on held-out tokens of the financial and general passages ([CLS] apart): relative change "
        "E‖h_twin − h_base‖² / E‖h_base‖², linear CKA, R² of the twin from an affine map of the base "
        "fitted on other documents, share of variance in the top 3 principal components, share of the twin's "
        "token variance that per-window means explain. Brackets: percentile bootstrap over source documents "
        "(`analysis.lens`); every measure by text type, position and interval in "
        "`activation_lens.parquet`.", "",
        "| layer | relative change | financial | general | financial − general | CKA | affine R² | "
        "top-3 PC share base → twin | window share (twin) | [CLS]: relative change / CKA / affine R² |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [_lens_table_row(r) for _, r in layers.iterrows()]
    return lines + ["", lens_answer(layers)]


def comparison_section(comparison: list[str] | None) -> list[str]:
    """Whether the change is financial: the finance pair against the control pair and the seed spread."""
    head = ["## Is it financial? Finance pair vs control pair vs fine-tune seed pair", ""]
    if comparison is None:
        return head + [
            "Not compared in this run: no control or seed pair is named for this pair, or the finance pair's "
            "lens is not written yet. `comparison.md` in the finance pair's analysis folder is rewritten as "
            "each of the three pairs' analyses ends (`analysis.lens.finance_pair`, `.control_pair`, "
            "`.seed_pair`)."]
    return head + ["As of this run (`comparison.md` holds the latest, rewritten as each pair's analysis "
                   "ends):", "", *comparison]


def findings_markdown(layers: pd.DataFrame, pair: str, base: str, domain: str, tau: float, min_auroc: float,
                      fdr: float, counts: dict[str, int], median_chars: dict[str, float] | None = None,
                      comparison: list[str] | None = None) -> str:
    """``findings.md``; ``comparison``: the lines of :func:`finsae.analysis.comparison.comparison_lines`
    when this pair is the finance pair of a comparison."""
    layers = layers.sort_values("layer").reset_index(drop=True)
    lengths = ""
    if median_chars:
        lengths = (" Median characters per passage: " + ", ".join(f"{k} {v:.0f}" for k, v in median_chars.items()
                                                                  if k in ("financial", "general", "ag_business",
                                                                           "ag_other")) + ".")
    lines = [
        f"# Findings: {base} vs {domain} ({pair})", "", *lens_section(layers), "",
        *comparison_section(comparison), "", "## How: feature methods", "",
        f"Generated by `python analyze.py pair={pair}` from `layers.parquet`; every number is on held-out text no "
        f"SAE was trained on and the finance twin was not fine-tuned on "
        f"({', '.join(f'{k} {v}' for k, v in counts.items())} passages).{lengths} Brackets: 95% bootstrap "
        f"intervals over source documents, resampled within each side of a contrast (passages cut from one "
        f"document move together); counts of latents over a threshold use the basic (reverse-percentile) "
        f"interval, the overlap resamples latents. \"seed 1\" columns recompute the number with the seed-1 SAEs: "
        f"the seed-to-seed spread beside the interval.", "",
        "## Independent SAEs: overlap and its controls", "",
        f"| layer | overlap @ {tau} (same init seed) | pairs @ {tau}: summed-cosine / max-cardinality | "
        f"cross-seed overlap | overlap, seed-1 pair | seed ceiling base | seed ceiling domain | "
        f"null: covariance-matched rows | null: adjacent-layer SAE | isotropic random rows (0 by construction) | "
        f"same index |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in layers.iterrows():
        adj = _get(r, "null_adjacent_layer")
        adj_txt = (f"{_f(_get(r, 'overlap_null_adjacent'))} (L{int(adj)})" if math.isfinite(_num(adj))
                   else "n/a")
        lines.append(
            f"| {int(r['layer'])} | {_ci(r, 'overlap')} | {_f(_get(r, 'n_matched'), '{:.0f}')} / "
            f"{_f(_get(r, 'overlap_count_max_cardinality'), '{:.0f}')} | {_f(_get(r, 'overlap_cross_seed'))} | "
            f"{_f(_get(r, 'overlap_seed1'))} | {_f(_get(r, 'overlap_seed_ceiling_base'))} | "
            f"{_f(_get(r, 'overlap_seed_ceiling_domain'))} | {_f(_get(r, 'overlap_null'))} | {adj_txt} | "
            f"{_f(_get(r, 'overlap_random'))} | {_f(_get(r, 'overlap_index'))} |")
    lines += _counts_and_change(layers, tau, min_auroc, fdr)
    n_methods = sum(bool(m.findings_header) for m in _methods().values())
    lines += ["", f"## {COUNT_WORDS.get(n_methods, str(n_methods))} methods side by side", "", *side_by_side(layers)]
    lines += ["", "Do they agree on where fine-tuning acts?", "", *_agreement(layers)]

    lines += _claims(layers, tau)
    return "\n".join(lines) + "\n"


def _counts_and_change(layers: pd.DataFrame, tau: float, min_auroc: float, fdr: float) -> list[str]:
    """The independent SAEs' financial / specialized counts beside the seed floor, and the matched pairs'
    selectivity change with cross-reconstruction."""
    lines: list[str] = []
    lines += [
        "", "## Independent SAEs: financial latents, specialized latents and the seed floor (one latent set)", "",
        f"Specialized: financial (FDR {fdr:.0%} and AUROC >= {min_auroc} in the broad and the genre-matched "
        f"contrast) and best match < {tau}. The floor and the base-vs-domain count are taken on the same latents, "
        f"the financial latents of domain seed 1: unmatched in base seed 0 (different initialisations, like the "
        f"ceiling) vs unmatched in domain seed 0 (seed instability alone).", "",
        "| layer | financial base (seed 1) | financial domain (seed 1) | specialized, domain seed 0 | "
        "specialized, domain seed 1 vs base seed 0 | seed floor, domain seed 1 vs domain seed 0 | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in layers.iterrows():
        lines.append(
            f"| {int(r['layer'])} | {_ci(r, 'n_financial_base', '{:.0f}')} ({_f(_get(r, 'n_financial_base_seed1'), '{:.0f}')}) | "
            f"{_ci(r, 'n_financial', '{:.0f}')} ({_f(_get(r, 'n_financial_seed1'), '{:.0f}')}) | "
            f"{_ci(r, 'n_specialized', '{:.0f}')} | {_ci(r, 'n_specialized_seed1', '{:.0f}')} | "
            f"{_ci(r, 'n_specialized_seed_floor', '{:.0f}')} | {_ci(r, 'specialized_over_floor', '{:.2f}')} |")
    lines += [
        "", "## Independent SAEs: selectivity change of matched pairs and cross-reconstruction", "",
        "AUROC change = domain AUROC - base AUROC of a matched pair (financial pairs / all pairs). Cross-FVU: an "
        "SAE on the other model's activations, raw (its own input scale and offset) and corrected (scale and "
        "offset re-estimated on the target activations, no training).", "",
        "| layer | broad contrast | genre-matched contrast | FVU base / domain | base SAE on domain: raw / "
        "corrected | domain SAE on base: raw / corrected |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in layers.iterrows():
        lines.append(
            f"| {int(r['layer'])} | {_ci(r, 'improvement')} / {_ci(r, 'improvement_all')} | "
            f"{_ci(r, 'improvement_genre')} / {_f(_get(r, 'improvement_genre_all'))} | "
            f"{_f(_get(r, 'fvu_base'))} / {_f(_get(r, 'fvu_domain'))} | "
            f"{_f(_get(r, 'fvu_base_on_domain'))} / {_f(_get(r, 'cross_fvu_corrected_base_on_domain'))} | "
            f"{_f(_get(r, 'fvu_domain_on_base'))} / {_f(_get(r, 'cross_fvu_corrected_domain_on_base'))} |")
    return lines


def _claims(layers: pd.DataFrame, tau: float) -> list[str]:
    """The write-up's claims beside the controlled measurements, and the reading per layer."""
    lines: list[str] = []
    floor_known = (pd.to_numeric(layers["n_specialized_seed_floor"], errors="coerce").notna()
                   if "n_specialized_seed_floor" in layers else pd.Series(False, index=layers.index))
    spec1 = int(layers.loc[floor_known, "n_specialized_seed1"].sum()) if floor_known.any() else None
    floor = int(layers.loc[floor_known, "n_specialized_seed_floor"].sum()) if floor_known.any() else None
    ceil = [c for c in ("overlap_seed_ceiling_base", "overlap_seed_ceiling_domain") if _has(layers, c)]
    lines += [
        "", "## The write-up's claims, measured with controls", "",
        "| claim | how it was measured | what the controlled measurement says |", "|---|---|---|",
        f"| {CLAIMS[0][1]} | {CLAIMS[0][2]} | one-to-one decoder matching: overlap "
        + ", ".join(f"{_f(r['overlap'])} at layer {int(r['layer'])}" for _, r in layers.iterrows())
        + " (same initialisation seed); with different seeds, as in the ceiling, "
        + (", ".join(f"{_f(r['overlap_cross_seed'])} at layer {int(r['layer'])}" for _, r in layers.iterrows()
                     if math.isfinite(_num(_get(r, "overlap_cross_seed")))) or "n/a (no seed repeats)")
        + "; two seeds of one model share "
        + (", ".join(f"{_f(layers[c].min())}-{_f(layers[c].max())} ({c.rsplit('_', 1)[1]} pair)" for c in ceil)
           or "n/a")
        + f" (seed ceilings); a null dictionary drawn from the activations' covariance reaches at most "
        f"{_f(_num(layers['overlap_null'].max()) if 'overlap_null' in layers else math.nan)} (isotropic random rows: "
        f"0 by construction). The write-up's same-index comparison gives at most "
        f"{_f(layers['overlap_index'].max())}: above zero only because both SAEs start from the same seed's "
        f"random decoder. |",
        f"| {CLAIMS[1][1]} | {CLAIMS[1][2]} | {int(layers['n_specialized'].sum())} specialized domain latents over "
        f"{len(layers)} layers; on one latent set (domain seed 1's financial latents) "
        f"{spec1 if spec1 is not None else 'n/a'} are unmatched in the base SAE against "
        f"{floor if floor is not None else 'n/a'} unmatched in another seed of the domain model itself. |",
        f"| {CLAIMS[2][1]} | {CLAIMS[2][2]} | change in selectivity (domain AUROC - base AUROC of matched pairs; "
        f"all pairs / pairs with a financial member): " + "; ".join(
            f"layer {int(r['layer'])} {_ci(r, 'improvement_all')} / {_ci(r, 'improvement')}"
            for _, r in layers.iterrows()) + ". |",
        "", "## Reading", "",
        _reading(layers, tau),
    ]
    return lines


def _reading(layers: pd.DataFrame, tau: float) -> str:
    out = []
    for _, r in layers.iterrows():
        if not math.isfinite(_num(_get(r, "overlap_cross_seed"))):
            continue
        out.append(f"Layer {int(r['layer'])}: base and domain SAEs of different seeds share "
                   f"{_f(r['overlap_cross_seed'])} of latents at cos >= {tau}, against "
                   f"{_f(_get(r, 'overlap_seed_ceiling_base'))} (base) and "
                   f"{_f(_get(r, 'overlap_seed_ceiling_domain'))} (domain) between two seeds of one model and "
                   f"{_f(_get(r, 'overlap_null'))} for the covariance-matched null; "
                   f"{_f(_get(r, 'n_specialized_seed1'), '{:.0f}')} specialized latents of domain seed 1 against a "
                   f"seed floor of {_f(_get(r, 'n_specialized_seed_floor'), '{:.0f}')} on the same latents.")
    if not out:
        out.append("No seed repeats were found, so no overlap can be read against its ceiling; train them "
                   "(`make saes`).")
    return " ".join(out)

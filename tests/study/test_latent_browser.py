"""The latent browser (finsae.report.latents), built from small artifacts written with the stages' own writers
(planted keyword latents, a crosscoder table, warm starts, labels, an SAE's firing frequencies) and from the
tiny study: every latent of each class gets its section, LLM labels are escaped, nothing is fetched, and in
Debian's chromium the search box filters the list and no page is wider than the window."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from finsae.analysis.artifacts import read_features, read_table, write_analysis_table
from finsae.analysis.crosscoder import CROSSCODER_COLUMNS
from finsae.analysis.warmstart import WARMSTART_COLUMNS
from finsae.analysis.contexts import CONTEXT_COLUMNS, write_contexts
from finsae.errors import FinsaeError
from finsae.labeling.artifacts import LabelArtifacts, read_labels, write_labels
from finsae.labeling.summary import LabelSummary
from finsae.paths import analysis_dir, labels_dir, sae_dir
from finsae.report.latents import collect, write_latent_browser
from finsae.sae import SaeConfig, TopKSAE
from finsae.sae.artifact import publish_sae
from finsae.sae.summary import SaeSummary

PAIR, BASE, DOMAIN, LAYER = "minilm_fin", "minilm", "minilm_fin", 2
SCRIPT_LABEL = '<script>alert("x")</script> & dividends'
LONG_LABEL = "inflation_" * 40
"""One 400-character word: the index must wrap it, not widen the page."""
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SAE_FIELDS = dict(seed=0, d_in=8, num_latents=20, k=4, lr=1e-3, batch_size=64, steps=2, tokens=128,
                  dead_fraction=0.0, dead_tokens=100, fvu=0.1, nmse=0.1, l0=4.0, sae_eval_tokens=10,
                  sae_eval_never_fired_fraction=0.0, corpus="mix", corpus_hash="0" * 16,
                  activation_tokens=100, code_version="0")


def _page(kind: str, model: str) -> str:
    return f"{PAIR}/{kind}_{model}_layer_{LAYER}.html"


def _method_tables(folder) -> None:
    """A crosscoder table (latents 0 domain-only, 1 base-only, 3 domain-only but an artifact, the rest shared)
    with contexts of 0, 1 and 3, and a warm-start table where latents 4 and 5 changed."""
    from labeling.fixtures import latent_rows

    n, rest = 10, [0.5] * 6
    xc = pd.DataFrame({"layer": LAYER, "latent": np.arange(n), "delta": [0.95, 0.05, 0.5, 0.97, *rest],
                       "decoder_cosine": 0.3, "class": ["domain_only", "base_only", "shared", "domain_only",
                                                        *["shared"] * 6],
                       "artifact": np.arange(n) == 3, "n_active": 40, "auroc_broad": 0.7, "auroc_genre": 0.6,
                       "financial": False,
                       **{c: 0.1 for c in CROSSCODER_COLUMNS if c.startswith(("beta", "nu"))}})
    write_analysis_table(folder, "crosscoder", xc[list(CROSSCODER_COLUMNS)])
    rng = np.random.default_rng(3)
    rows = [r for latent in (0, 1, 3) for r in latent_rows(latent, rng, "merger")]
    ctx = pd.DataFrame(rows, columns=list(CONTEXT_COLUMNS)).astype({"rank": "int32", "max_act": "float32"})
    write_contexts(ctx, folder, "crosscoder", LAYER)
    ws = pd.DataFrame({"layer": LAYER, "latent": np.arange(n), "drift_domain": np.linspace(0, 0.5, n),
                       "drift_control": 0.01, "selectivity_change": 0.02, "financial": False, "live": True,
                       "changed": np.isin(np.arange(n), [4, 5])})
    flags = ("changed_vs_control", "died", "born", "silent", "live_control_b", "died_control_b",
             "born_control_b")
    # the flags False, the other new columns NaN
    ws = ws.assign(**dict.fromkeys(flags, False)).reindex(columns=list(WARMSTART_COLUMNS))
    write_analysis_table(folder, "warmstart", ws)


def _labels(artifacts) -> None:
    """Labels of the domain SAE's latents 0 (a script), 1 (one long word) and 4."""
    labels = pd.DataFrame({"model": DOMAIN, "layer": LAYER, "latent": [0, 1, 4], "role": "target",
                           "status": "labelled", "label": [SCRIPT_LABEL, LONG_LABEL, "merger talk"],
                           "description": ["<b>bold</b>", "prices", "deals"],
                           "embedding_auroc": [0.91, 0.8, 0.7],
                           "embedding_auroc_control": [0.55, 0.5, 0.5],
                           "matched_control_embedding_auroc": [0.62, 0.6, 0.6]})
    per_layer = pd.DataFrame({"model": [DOMAIN], "layer": [LAYER], "metric": ["embedding_auroc"],
                              "score": [0.85], "control": [0.52]})
    summary = LabelSummary(pair=PAIR, backend="lexical", llm="lexical", prompt_version="0",
                           scorers=["embedding"], n_selected=3, n_targets=3, n_controls=0, n_labelled=3,
                           n_skipped=0, n_failed=0)
    write_labels(labels_dir(artifacts, PAIR), LabelArtifacts(labels, per_layer, summary))


def _sae_frequencies(artifacts) -> None:
    """The domain SAE (tag ``default``, as the planted summary names it): latents 0 and 1 never fired."""
    sae = TopKSAE(SaeConfig(d_in=8, num_latents=20, k=4, seed=0))
    sae.init_from_sample(torch.randn(64, 8, generator=torch.Generator().manual_seed(0)))
    freq = np.r_[np.zeros(2), np.logspace(-4, -1, 18)].astype(np.float32)
    publish_sae(sae_dir(artifacts, DOMAIN, LAYER, "default"),
                sae, SaeSummary(**SAE_FIELDS, model=DOMAIN, layer=LAYER, tag="default"), freq, extra={})


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A store with the labeling tests' planted analysis, method tables, labels and the domain SAE's
    frequencies, and the browser built from it."""
    from labeling.fixtures import write_analysis

    art = tmp_path_factory.mktemp("browser") / "artifacts"
    folder = write_analysis(art, PAIR, BASE, DOMAIN, layers=(LAYER,))
    _method_tables(folder)
    _labels(art)
    _sae_frequencies(art)
    return art, write_latent_browser(art, art.parent / "browser")


def _section(page: str, latent: int) -> str:
    return page.split(f'<section class="latent" id="l{latent}">', 1)[1].split("</section>", 1)[0]


def _expected(art) -> dict[str, set[int]]:
    """Per page, the latents of every class, read from the tables themselves."""
    folder = analysis_dir(art, PAIR)
    feats = read_features(folder)
    want = {}
    for model, rows in feats.groupby("model"):
        picked = rows["financial"].fillna(False).astype(bool) | rows["specialized"].fillna(False).astype(bool)
        kind = "base" if model == BASE else "domain"
        want[_page(kind, model)] = set(rows.loc[picked, "latent"].astype(int))
    xc = read_table(folder, "crosscoder")
    want[_page("crosscoder", f"crosscoder_{BASE}_{DOMAIN}")] = set(
        xc.loc[xc["class"].isin(["base_only", "domain_only"]) | xc["financial"], "latent"])
    ws = read_table(folder, "warmstart")
    want[_page("warmstart", DOMAIN)] = set(ws.loc[ws["changed"], "latent"])
    return want


def test_every_latent_of_each_class_has_its_section(planted):
    from labeling.fixtures import KEYWORDS, NO_CONTEXT

    art, index = planted
    want = _expected(art)
    assert want[_page("domain", DOMAIN)] >= set(KEYWORDS) | {NO_CONTEXT}
    assert want[_page("crosscoder", f"crosscoder_{BASE}_{DOMAIN}")] == {0, 1, 3}
    text = index.read_text()
    for page, latents in want.items():
        html = (index.parent / page).read_text()
        assert set(map(int, re.findall(r'<section class="latent" id="l(\d+)">', html))) == latents, page
        for latent in latents:
            assert f'href="{page}#l{latent}"' in text  # listed in the index
            section = _section(html, latent)
            if latent == NO_CONTEXT and "crosscoder" not in page:
                assert "No stored contexts for this latent" in section
                continue
            assert "<svg" in section and section.count('<p class="ctx"><i>') >= 2, (page, latent)
            assert 'style="background:rgba(255,140,0,' in section  # the firing word shaded
    crosscoder = (index.parent / _page("crosscoder", f"crosscoder_{BASE}_{DOMAIN}")).read_text()
    assert "crosscoder domain-only" in _section(crosscoder, 0) and "Δ relative decoder norm" in crosscoder
    assert "sparsity artifact</b> yes" in _section(crosscoder, 3)
    assert "per-document max activation of its 30 stored contexts" in _section(crosscoder, 0)  # no doc count
    warm = (index.parent / _page("warmstart", DOMAIN)).read_text()
    assert "drift on the twin (1 − cos)</b> 0.222" in _section(warm, 4)
    assert "Not labelled." in _section(warm, 4)  # the domain SAE's latent 4 is not the warm run's
    assert "merger talk" in _section((index.parent / _page("domain", DOMAIN)).read_text(), 4)


def test_contexts_at_quantiles_histogram_density_and_facts(planted):
    _, index = planted
    page = (index.parent / _page("domain", DOMAIN)).read_text()
    section = _section(page, 0)
    # 30 firing documents: 20 top ones, then 10 quantile samples from the 21st down to the last
    assert section.count("<i>top ") == 5
    assert "<i>percentile ≈ 31 ·" in section and "<i>percentile ≈ 0 ·" in section
    assert "over its 30 firing documents" in section and "fires in 30 held-out documents" in section
    assert "AUROC finance vs general</b> 0.9" in section
    # latents 0 and 1 never fired on the SAE's evaluation tokens; 2 fires on 10^-4 of them (denser than 0, 1)
    assert "never fired on its SAE&#x27;s sae_eval tokens" in section
    density = "fires on 0.01% of its SAE&#x27;s sae_eval tokens (denser than 10% of its latents)"
    assert density in _section(page, 2)
    assert "(2 never fired)" in page  # the SAE's own firing-frequency histogram heads the page
    base = (index.parent / _page("base", BASE)).read_text()
    assert "No firing frequencies of this SAE" in base and "Not labelled." in _section(base, 0)
    assert "No quantile samples stored" in _section(page, 6)  # the latent with 3 firing documents


def test_labels_and_scores_are_escaped(planted):
    _, index = planted
    section = _section((index.parent / _page("domain", DOMAIN)).read_text(), 0)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; dividends" in section
    assert "&lt;b&gt;bold&lt;/b&gt;" in section
    assert "embedding_auroc 0.91 (shuffled 0.55, matched 0.62)" in section
    for path in index.parent.rglob("*.html"):
        text = path.read_text()
        assert "<script>alert" not in text and "<b>bold" not in text
        assert text.count("<script") == (1 if path == index else 0)  # only the index's own search script
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text, re.I), path  # nothing fetched


def test_missing_pieces_say_so_in_one_line(tmp_path):
    from labeling.fixtures import write_analysis

    (tmp_path / "empty").mkdir()
    text = write_latent_browser(tmp_path / "empty", tmp_path / "out0").read_text()
    assert "no feature comparison under analysis/" in text and "No latent of these classes" in text
    art = tmp_path / "art"
    folder = write_analysis(art, PAIR, BASE, DOMAIN, layers=(LAYER,))
    (folder / "features.parquet").write_bytes(b"cut")
    text = write_latent_browser(art, tmp_path / "out1").read_text()
    assert "art/analysis/minilm_fin/features.parquet" in text and "is damaged or cut" in text
    assert "no crosscoder table" in text and "no warmstart table" in text
    assert str(art) not in text  # the store is named by its folder, not by this machine's path
    with pytest.raises(FinsaeError, match="no artifacts folder"):
        write_latent_browser(tmp_path / "nowhere", tmp_path / "out2")
    groups, notes = collect(tmp_path / "empty")
    assert groups == [] and len(notes) == 1


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM and CHROMEDRIVER, "Debian's chromium and chromium-driver are needed (.ci/run installs)"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions", "--no-first-run",
                 "--window-size=1400,900"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


VISIBLE = "return Array.from(document.querySelectorAll('#latents tbody tr')).filter(r => !r.hidden).length;"


def _browse(index, query: str, expect: int) -> None:
    """Typing ``query`` in the index leaves ``expect`` rows; no page wider than 1,400 px; no console error."""
    from selenium.webdriver.common.by import By

    driver = _driver()
    try:
        driver.get(index.as_uri())
        total = driver.execute_script(VISIBLE)
        assert total > expect >= 1
        box = driver.find_element(By.ID, "q")
        box.send_keys(query)
        assert driver.execute_script(VISIBLE) == expect
        assert driver.find_element(By.ID, "n").text == str(expect)
        box.clear()
        box.send_keys(" ")  # an input event with an empty query: every row again
        assert driver.execute_script(VISIBLE) == total
        for page in [index, *sorted(index.parent.glob("*/*.html"))]:
            driver.get(page.as_uri())
            width = driver.execute_script("return [document.body.scrollWidth, document.body.clientWidth];")
            assert width[0] <= width[1], (page.name, width)
            assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        driver.quit()


def test_search_filters_and_no_page_overflows_in_chromium(planted):
    _, index = planted
    _browse(index, "ALERT(", 1)  # the planted label, matched case-insensitively as text (not run as a script)


@pytest.mark.slow
def test_browser_of_the_tiny_study(tiny_study, tmp_path):
    """The real stages' artifacts: the labels the label stage made of the planted latents (copied into the
    study with their contexts and features, without an analysis summary), and the tiny pair's own analysis."""
    index = write_latent_browser(tiny_study, tmp_path / "browser")
    groups, _ = collect(tiny_study)
    text = index.read_text()
    for g in groups:
        for latent in g.latents["latent"]:
            assert f'href="{g.page}#l{int(latent)}"' in text
        assert len(g.latents) or f"{g.title}: no latent of these classes" in text
    feats = read_features(analysis_dir(tiny_study, PAIR))
    fin = feats[feats["financial"].fillna(False).astype(bool)]
    domain = next(g for g in groups if g.pair == PAIR and g.model == DOMAIN)
    assert set(domain.latents["latent"]) == set(fin.loc[fin["model"] == DOMAIN, "latent"])
    page = (index.parent / domain.page).read_text()
    assert page.count('<p class="ctx"><i>top 1 ') >= 6 and "embedding_auroc" in page
    assert "minilm_fin: analysis summary not found at artifacts/analysis/minilm_fin/summary.json" in text
    labels = read_labels(labels_dir(tiny_study, PAIR)).set_index(["model", "layer", "latent"])
    text_of = (labels["label"].fillna("") + " " + labels["description"].fillna("")).str.lower()
    hits = sum(int("dividend" in text_of.get((g.model, g.layer, int(latent)), "")) for g in groups
               for latent in g.latents["latent"])
    _browse(index, "Dividend", hits)

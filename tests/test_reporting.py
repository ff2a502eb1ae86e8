"""The report collector turns stored summaries into the README tables and plot."""

import json

from finsae.reporting import write_reports


def test_reports_from_summaries(tmp_path):
    for model, layer, fvu in (("minilm", 0, 0.11), ("minilm", 1, 0.12), ("minilm_fin", 0, 0.13)):
        d = tmp_path / "sae" / model / f"layer_{layer}" / "demo"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"model": model, "layer": layer, "tag": "demo", "seed": 0,
                                                    "fvu": fvu, "dead_fraction": 0.0, "l0": 32.0,
                                                    "loss_recovered": 0.9, "tokens": 1000}))
    m = tmp_path / "models" / "minilm_fin"
    m.mkdir(parents=True)
    (m / "metrics.json").write_text(json.dumps({"phrasebank_test_accuracy": 0.85, "probe_test_accuracy": 0.7,
                                                "base_model": "minilm"}))
    text = write_reports(tmp_path)
    assert "| minilm_fin | 0 | demo |" in text and "0.13" in text and "0.85" in text
    assert (tmp_path / "reports" / "sae_layers.png").stat().st_size > 2000
    rows = (tmp_path / "reports" / "sae_table.csv").read_text().splitlines()
    assert len(rows) == 4

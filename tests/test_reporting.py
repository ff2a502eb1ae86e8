"""The report collector turns stored summaries into the README tables and plot."""

import json

from finsae.reporting import write_reports


def test_reports_from_summaries(tmp_path):
    for model, layer, fvu, dead in (("minilm", 0, 0.11, 0.0), ("minilm", 1, 0.14, 0.02), ("minilm_fin", 0, 0.13, 0.0)):
        d = tmp_path / "sae" / model / f"layer_{layer}" / "demo"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"model": model, "layer": layer, "tag": "demo", "seed": 0,
                                                    "fvu": fvu, "dead_fraction": dead, "l0": 32.0,
                                                    "loss_recovered": 0.9 if layer == 0 else float("nan"),
                                                    "tokens": 1000}))
    m = tmp_path / "models" / "minilm_fin"
    m.mkdir(parents=True)
    (m / "metrics.json").write_text(json.dumps({"phrasebank_test_accuracy": 0.85, "probe_test_accuracy": 0.7,
                                                "base_model": "minilm"}))
    text = write_reports(tmp_path)
    assert "| minilm_fin | 0 | demo |" in text and "0.13" in text and "0.85" in text
    assert "| minilm | 1 | 0.140 | **no** | n/a | **2.00%** | 32 | n/a |" in text
    assert (tmp_path / "reports" / "sae_layers.png").stat().st_size > 2000
    rows = (tmp_path / "reports" / "sae_table.csv").read_text().splitlines()
    assert len(rows) == 4
    demo = (tmp_path / "reports" / "sae_demo.md").read_text().splitlines()
    assert len(demo) == 2 + 3 and "| minilm_fin | 0 | 0.130 | yes |" in demo[-1]


def test_lr_sweep_table_includes_the_default_run(tmp_path):
    runs = [("demo", 1e-3, 0.13, 0), ("lr_5e-4", 5e-4, 0.15, 0), ("lr_2e-3", 2e-3, 0.12, 0),
            ("demo_seed1", 1e-3, 0.14, 1)]
    for tag, lr, fvu, seed in runs:
        d = tmp_path / "sae" / "minilm" / "layer_3" / tag
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"model": "minilm", "layer": 3, "tag": tag, "seed": seed,
                                                    "lr": lr, "fvu": fvu, "dead_fraction": 0.0}))
    other = tmp_path / "sae" / "minilm" / "layer_0" / "demo"  # no sweep at layer 0: not in the table
    other.mkdir(parents=True)
    (other / "summary.json").write_text(json.dumps({"model": "minilm", "layer": 0, "tag": "demo", "seed": 0,
                                                    "lr": 1e-3, "fvu": 0.1}))
    text = write_reports(tmp_path)
    table = (tmp_path / "reports" / "lr_sweep.md").read_text().splitlines()
    assert [r.split(" | ")[3] for r in table[2:]] == ["lr_5e-4", "demo", "lr_2e-3"]  # sorted by lr, seed 0 only
    assert "## Learning-rate sweep" in text
    assert (tmp_path / "reports" / "lr_sweep.png").stat().st_size > 2000

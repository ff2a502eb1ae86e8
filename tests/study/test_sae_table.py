"""The SAE tables: stored summaries become the markdown and CSV tables and plots beside the report page."""


import pytest

from finsae.errors import FinsaeError
from finsae.finetune.summary import FinetuneSummary
from finsae.report.sae_table import write_tables
from finsae.report.study import Study
from finsae.sae.summary import SaeSummary

REQUIRED = dict(seed=0, d_in=384, num_latents=12288, k=32, lr=1e-3, batch_size=512, steps=2, tokens=1000,
                dead_fraction=0.0, dead_tokens=100, fvu=0.1, nmse=0.1, l0=32.0, sae_eval_tokens=10,
                sae_eval_never_fired_fraction=0.0, corpus="mix", corpus_hash="0" * 16, activation_tokens=100,
                code_version="0")


def tables_of(root):
    return write_tables(Study(root), root / "report")


def write_summary(root, model, layer, tag, **fields):
    SaeSummary(**{**REQUIRED, "model": model, "layer": layer, "tag": tag, **fields}).write(
        root / "sae" / model / f"layer_{layer}" / tag)


def test_tables_from_summaries(tmp_path):
    for model, layer, fvu, dead in (("minilm", 0, 0.11, 0.0), ("minilm", 1, 0.14, 0.02), ("minilm_fin", 0, 0.13, 0.0)):
        write_summary(tmp_path, model, layer, "demo", fvu=fvu, dead_fraction=dead, nmse=float("nan"),
                      loss_recovered=0.9 if layer == 0 else float("nan"))
    FinetuneSummary(
        base_model="minilm", out_name="minilm_fin", phrasebank_test_accuracy=0.85, phrasebank_test_macro_f1=0.8,
        phrasebank_test_n=967, phrasebank_test_allagree_accuracy=0.9, phrasebank_test_allagree_macro_f1=0.88,
        phrasebank_test_allagree_n=432, probe_test_accuracy=0.7, probe_test_macro_f1=0.65, probe_test_n=967,
        probe_test_allagree_accuracy=0.8, probe_test_allagree_macro_f1=0.78, probe_test_allagree_n=432,
        train_examples=10, train_steps=1, mlm_steps=0, mlm_final_loss=None, probe_pooling="mean",
        probe_train_examples=10, seed=0, code_version="0", seconds=1.0, finbert_reported_accuracy_50agree=0.86,
    ).write(tmp_path / "models" / "minilm_fin")
    text = tables_of(tmp_path)
    assert "| minilm_fin | 0 | demo |" in text and "0.13" in text and "0.85" in text
    assert "| minilm | 1 | 12,288 | 0.140 | **no** | n/a | **2.00%** | 32 | n/a |" in text
    assert (tmp_path / "report" / "sae_layers.png").stat().st_size > 2000
    rows = (tmp_path / "report" / "sae_table.csv").read_text().splitlines()
    assert len(rows) == 4
    demo = (tmp_path / "report" / "sae_demo.md").read_text().splitlines()
    assert len(demo) == 2 + 3 and "| minilm_fin | 0 | 12,288 | 0.130 | yes |" in demo[-1]


def test_lr_sweep_table_includes_the_default_run(tmp_path):
    runs = [("demo", 1e-3, 0.13, 0), ("lr_5e-4", 5e-4, 0.15, 0), ("lr_2e-3", 2e-3, 0.12, 0),
            ("demo_seed1", 1e-3, 0.14, 1)]
    for tag, lr, fvu, seed in runs:
        write_summary(tmp_path, "minilm", 3, tag, seed=seed, lr=lr, fvu=fvu)
    write_summary(tmp_path, "minilm", 0, "demo", lr=1e-3, fvu=0.1)  # no sweep at layer 0: not in the table
    text = tables_of(tmp_path)
    table = (tmp_path / "report" / "lr_sweep.md").read_text().splitlines()
    assert [r.split(" | ")[3] for r in table[2:]] == ["lr_5e-4", "demo", "lr_2e-3"]  # sorted by lr, seed 0 only
    # a default run of another setting (the demo retrained smaller) is no point of the sweep
    write_summary(tmp_path, "minilm", 3, "demo", lr=1e-3, fvu=0.17, num_latents=768)
    tables_of(tmp_path)
    table = (tmp_path / "report" / "lr_sweep.md").read_text().splitlines()
    assert [r.split(" | ")[3] for r in table[2:]] == ["lr_5e-4", "lr_2e-3"]
    assert "## Learning-rate sweep" in text
    assert (tmp_path / "report" / "lr_sweep.png").stat().st_size > 2000


@pytest.mark.parametrize("text, why", [("{not json", "not valid JSON"), ('{"model": "minilm"}', "missing"),
                                       ("[1, 2]", "not a JSON object")])
def test_a_corrupt_summary_is_named(tmp_path, text, why):
    write_summary(tmp_path, "minilm", 0, "demo")
    bad = tmp_path / "sae" / "minilm" / "layer_1" / "demo" / "summary.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(text)
    with pytest.raises(FinsaeError, match=why) as err:
        tables_of(tmp_path)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_summary_round_trips_through_its_type(tmp_path):
    s = SaeSummary(**{**REQUIRED, "model": "minilm", "layer": 2, "tag": "t", "loss_recovered": float("nan")})
    s.write(tmp_path)
    back = SaeSummary.read(tmp_path)
    assert back.to_dict().keys() == s.to_dict().keys() and back.fvu == s.fvu and back.objective == s.fvu
    assert "loss_recovered" not in back.scalars() and back.scalars()["tag"] == "t"


def test_the_report_command_writes_the_tables_beside_its_page(tmp_path, capsys):
    from finsae.report.__main__ import main as report_main

    for layer, fvu in ((0, 0.11), (1, 0.12)):
        write_summary(tmp_path, "minilm", layer, "demo", fvu=fvu)
    assert report_main(["--artifacts", str(tmp_path), "--results", "", "--readme", ""]) == 0
    out = tmp_path / "report"
    assert (out / "index.html").stat().st_mtime >= (out / "sae_table.md").stat().st_mtime  # the page comes last
    assert len((out / "sae_table.csv").read_text().splitlines()) == 3
    page = (out / "index.html").read_text().split('<section id="sae">', 1)[1].split("</section>", 1)[0]
    assert 'src="data:image/png;base64,' in page and "0.12" in page  # the same layer figure, inline
    assert "## Demo SAEs (README table)" in capsys.readouterr().out

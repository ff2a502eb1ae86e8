"""The label stage's artifact contract (``finsae.labeling.artifacts``): what the writer writes the readers read
back; a missing or damaged file fails in one line naming the file and ``python label.py``, and the report shows
that line instead of ending."""

import json

import numpy as np
import pandas as pd
import pytest

from finsae.errors import FinsaeError
from finsae.summary import is_published
from finsae.labeling.artifacts import (
    LABELS_FILE,
    PER_LAYER_FILE,
    LabelArtifacts,
    publish_labels,
    read_label_artifacts,
    read_labels,
    read_per_layer,
    read_summary,
    write_labels,
)
from finsae.labeling.summary import LabelSummary
from finsae.summary import SUMMARY_FILE

from tolerances import FLOAT64_TOL


def _artifacts(n_labelled: int = 2) -> LabelArtifacts:
    labels = pd.DataFrame({"model": ["m", "m", "m"], "layer": [2, 2, 2], "latent": [0, 5, 9],
                           "role": ["target", "target", "control"], "status": ["labelled", "labelled", "skipped"],
                           "label": ["dividend payouts", "mergers", None], "description": ["d0", "d5", None],
                           "embedding_auroc": [0.91, 0.72, np.nan]})
    per_layer = pd.DataFrame({"model": ["m", "all"], "layer": [2, -99], "metric": ["embedding_auroc"] * 2,
                              "score": [0.815, 0.815], "control": [0.5, 0.5]})
    summary = LabelSummary(pair="p", backend="lexical", llm="lexical", prompt_version="lexical-v1",
                           scorers=["embedding"], n_selected=3, n_targets=2, n_controls=1, n_labelled=n_labelled,
                           n_skipped=1, n_failed=0, embedding_auroc=0.815, per_layer=[{"model": "all"}])
    return LabelArtifacts(labels, per_layer, summary)


def test_what_is_written_is_read_back(tmp_path):
    a = _artifacts()
    write_labels(tmp_path, a)
    b = read_label_artifacts(tmp_path)
    pd.testing.assert_frame_equal(b.labels, a.labels, check_exact=True)
    pd.testing.assert_frame_equal(b.per_layer, a.per_layer, rtol=FLOAT64_TOL)
    assert type(b.summary) is LabelSummary and json.dumps(b.summary.to_dict()) == json.dumps(a.summary.to_dict())


def test_publish_replaces_an_earlier_run_in_one_rename(tmp_path):
    out = tmp_path / "labels" / "p"
    assert not is_published(out)
    publish_labels(out, _artifacts(n_labelled=2))
    publish_labels(out, _artifacts(n_labelled=1))
    assert is_published(out) and read_summary(out).n_labelled == 1
    assert not list(out.parent.glob(".*")), "no staging folder left behind"


READERS = {LABELS_FILE: read_labels, PER_LAYER_FILE: read_per_layer, SUMMARY_FILE: read_summary}


def _one_line(err, path) -> str:
    text = str(err.value)
    assert "\n" not in text and str(path) in text and "`python label.py`" in text, text
    return text


@pytest.mark.parametrize("name", sorted(READERS))
def test_a_missing_file_is_one_line_naming_it_and_the_command(tmp_path, name):
    write_labels(tmp_path, _artifacts())
    (tmp_path / name).unlink()
    with pytest.raises(FinsaeError) as err:
        READERS[name](tmp_path)
    assert "not found at" in _one_line(err, tmp_path / name)
    with pytest.raises(FinsaeError):
        read_label_artifacts(tmp_path)
    if name == LABELS_FILE:
        assert read_labels(tmp_path, missing_ok=True) is None


@pytest.mark.parametrize("name", sorted(READERS))
@pytest.mark.parametrize("damage", ["garbage", "cut", "empty"])
def test_a_corrupt_file_is_one_line_naming_it_and_the_command(tmp_path, name, damage):
    write_labels(tmp_path, _artifacts())
    path = tmp_path / name
    data = path.read_bytes()
    path.write_bytes({"garbage": b"\x00\x01 not a table {", "cut": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.raises(FinsaeError) as err:
        READERS[name](path.parent)
    _one_line(err, path)
    if name != SUMMARY_FILE:  # the tables share the analysis stage's wording (finsae.atomic.read_table)
        assert "is damaged or cut" in str(err.value) and "delete it and rerun" in str(err.value)


@pytest.mark.parametrize("name, content", [
    (LABELS_FILE, pd.DataFrame({"model": ["m"], "layer": [2]})),  # no latent, no label
    (PER_LAYER_FILE, pd.DataFrame({"model": ["m"], "x": [1]})),
    (SUMMARY_FILE, {"pair": "p"}),
    (SUMMARY_FILE, [1, 2]),
])
def test_a_file_of_another_shape_is_one_line(tmp_path, name, content):
    write_labels(tmp_path, _artifacts())
    path = tmp_path / name
    if isinstance(content, pd.DataFrame):
        content.to_parquet(path) if name.endswith(".parquet") else content.to_csv(path, index=False)
    else:
        path.write_text(json.dumps(content))
    with pytest.raises(FinsaeError) as err:
        READERS[name](tmp_path)
    _one_line(err, path)


@pytest.mark.parametrize("name", [LABELS_FILE, PER_LAYER_FILE])
def test_the_report_shows_a_damaged_labels_file_as_its_one_line(tmp_path, name):
    from finsae.report import build
    from finsae.report.study import Study

    out = tmp_path / "labels" / "p"
    write_labels(out, _artifacts())
    html = build.labels(Study(tmp_path))
    assert "dividend payouts" in html and "unreadable" not in html
    (out / name).write_bytes(b"damaged")
    html = build.labels(Study(tmp_path))
    assert f"unreadable: {out / name} (" in html and "is damaged or cut" in html and "python label.py" in html


def test_join_labels_adds_each_latents_label_and_scores_by_model_layer_latent():
    from finsae.labeling.artifacts import join_labels

    labels = _artifacts().labels.assign(embedding_auroc_control=[0.5, 0.6, np.nan])
    features = pd.DataFrame({"model": ["m", "m", "m", "other"], "layer": [2, 2, 3, 2], "latent": [5, 7, 0, 0],
                             "financial": [True, False, True, True]})
    out = join_labels(features, labels)
    assert len(out) == len(features) and out[["model", "layer", "latent", "financial"]].equals(features)
    assert out["label"].tolist()[0] == "mergers" and out["label"].iloc[1:].isna().all()  # (m, 3, 0): other layer
    assert out.loc[0, "label_description"] == "d5" and out.loc[0, "label_status"] == "labelled"
    assert out.loc[0, "label_role"] == "target"
    assert out.loc[0, "label_embedding_auroc"] == pytest.approx(0.72, abs=FLOAT64_TOL)
    assert out.loc[0, "label_embedding_auroc_control"] == pytest.approx(0.6, abs=FLOAT64_TOL)
    assert "label_embedding_auroc" not in join_labels(features, labels, scores=False)
    assert join_labels(features, None) is features


def test_join_labels_replaces_label_columns_a_features_table_already_holds():
    """A features table from before labels were joined at read time held them merged in: joined afresh, once."""
    from finsae.labeling.artifacts import join_labels

    stale = pd.DataFrame({"model": ["m", "m"], "layer": [2, 2], "latent": [0, 1], "label": ["old", "old"],
                          "label_status": ["labelled", "labelled"], "label_embedding_auroc": [0.1, 0.1]})
    out = join_labels(stale, _artifacts().labels)
    assert out["label"].tolist()[0] == "dividend payouts" and pd.isna(out["label"].iloc[1])
    assert not [c for c in out.columns if c.endswith(("_x", "_y"))]
    assert out["label_embedding_auroc"].iloc[0] == pytest.approx(0.91, abs=FLOAT64_TOL)


def test_join_labels_on_keys_parsed_out_of_feature_names():
    from finsae.labeling.artifacts import join_labels

    parsed = pd.DataFrame({"model": ["m", None], "layer": ["2", None], "latent": ["0", None]})
    out = join_labels(parsed, _artifacts().labels, scores=False)
    assert out["label"].iloc[0] == "dividend payouts" and pd.isna(out["label"].iloc[1])

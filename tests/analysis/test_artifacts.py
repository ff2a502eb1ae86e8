"""The analysis stage's artifact contract: tables round-trip through the writers and readers, per-layer folders
recombine, and a missing or damaged file fails through its reader in one line naming it and `python analyze.py`."""

import json

import numpy as np
import pandas as pd
import pytest

from finsae.analysis import artifacts
from finsae.analysis.artifacts import (
    COMMAND,
    check_layer_folders,
    layer_folders,
    read_features,
    read_findings,
    read_summary,
    read_table,
    write_layer,
    write_tables,
)
from finsae.analysis.crosscoder import CROSSCODER_COLUMNS
from finsae.analysis.summary import AnalysisSummary
from finsae.analysis.warmstart import WARMSTART_COLUMNS
from finsae.errors import DataMissingError, FinsaeError

TABLES = {name: spec.file for name, spec in artifacts.specs().items()}


def features(layer: int, n: int = 4) -> pd.DataFrame:
    return pd.DataFrame({"model": "m", "role": "domain", "layer": layer, "latent": np.arange(n),
                         "financial": np.arange(n) < 2, "auroc_broad": np.linspace(0.4, 0.9, n)})


def crosscoder_rows(layer: int, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({c: np.zeros(n) for c in CROSSCODER_COLUMNS}).assign(
        layer=layer, latent=np.arange(n), **{"class": "shared", "artifact": False, "financial": False})


def one_line(e: pytest.ExceptionInfo, path) -> str:
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and COMMAND in msg, msg
    return msg


def test_layer_folders_round_trip_and_a_method_gone_now_leaves_no_table(tmp_path):
    meta = {"settings": {"pair": "p"}, "layer": 0, "saes": {}}
    row = pd.DataFrame([{"layer": 0, "overlap": 0.5}])
    curves = pd.DataFrame({"tau": [0.5, 0.7], "overlap": [0.9, 0.4]})
    write_layer(tmp_path, 0, {"row": row, "features": features(0), "curves": curves,
                              "crosscoder": crosscoder_rows(0)}, meta)
    write_layer(tmp_path, 1, {"row": row.assign(layer=1), "features": features(1), "curves": curves}, {**meta, "layer": 1})
    got = [(m["layer"], t()) for m, t in layer_folders(tmp_path)]
    assert [layer for layer, _ in got] == [0, 1]
    assert set(got[0][1]) == {"row", "features", "curves", "crosscoder"} and "crosscoder" not in got[1][1]
    pd.testing.assert_frame_equal(got[1][1]["features"], features(1))
    # layer 0 rerun without its crosscoder: the old table goes
    write_layer(tmp_path, 0, {"row": row, "features": features(0), "curves": curves}, meta)
    assert not (artifacts.layer_dir(tmp_path, 0) / "crosscoder.parquet").exists()
    # a job that never wrote its meta.json is not a layer
    (artifacts.layer_dir(tmp_path, 5)).mkdir()
    assert [m["layer"] for m, _ in layer_folders(tmp_path)] == [0, 1]


@pytest.mark.parametrize("damage", ["{not json", "[]", '{"layer": "0", "settings": {}}', '{"layer": 0}', b"\xff\xfe"])
def test_a_damaged_layer_meta_is_refused_naming_it_not_dropped(tmp_path, damage):
    meta = {"settings": {"pair": "p"}, "layer": 0, "saes": {}}
    for layer in (0, 1):
        write_layer(tmp_path, layer, {"row": pd.DataFrame([{"layer": layer}])}, {**meta, "layer": layer})
    path = artifacts.layer_dir(tmp_path, 0) / artifacts.LAYER_META
    path.write_bytes(damage) if isinstance(damage, bytes) else path.write_text(damage)
    with pytest.raises(FinsaeError, match="damaged or cut") as e:
        list(layer_folders(tmp_path))
    one_line(e, path)
    with pytest.raises(FinsaeError, match="damaged or cut"):  # before any work, unless this run rewrites it
        check_layer_folders(tmp_path, rewritten=[1])
    check_layer_folders(tmp_path, rewritten=[0])


def test_combined_tables_round_trip_and_absent_methods_are_removed(tmp_path):
    frames = {"layers": pd.DataFrame({"layer": [0, 1]}), "features": pd.concat([features(0), features(1)]),
              "curves": pd.DataFrame({"tau": [0.7]}), "crosscoder": crosscoder_rows(1)}
    write_tables(tmp_path, frames)
    pd.testing.assert_frame_equal(read_features(tmp_path), frames["features"].reset_index(drop=True))
    assert tuple(read_table(tmp_path, "crosscoder").columns) == CROSSCODER_COLUMNS
    assert (tmp_path / TABLES["crosscoder"]).is_file()
    write_tables(tmp_path, {k: v for k, v in frames.items() if k != "crosscoder"})
    assert not (tmp_path / TABLES["crosscoder"]).exists()
    with pytest.raises(ValueError, match="lacks columns"):
        write_tables(tmp_path, {**frames, "features": features(0).drop(columns=["financial"])})


@pytest.mark.parametrize("name", list(TABLES))
def test_a_missing_or_cut_table_fails_in_one_line(tmp_path, name):
    path = tmp_path / TABLES[name]
    with pytest.raises(DataMissingError) as e:
        read_table(tmp_path, name)
    one_line(e, path)
    frame = crosscoder_rows(0) if name == "crosscoder" else features(0).assign(
        **{c: 0.0 for c in (*WARMSTART_COLUMNS, *artifacts.specs()[name].columns) if c not in features(0)})
    frame.to_parquet(path, index=False)
    assert len(read_table(tmp_path, name)) == len(frame)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a copy cut short
    with pytest.raises(FinsaeError, match="damaged or cut") as e:
        read_table(tmp_path, name)
    one_line(e, path)
    path.write_text("not a parquet file")
    with pytest.raises(FinsaeError, match="damaged or cut") as e:
        read_table(tmp_path, name)
    one_line(e, path)


def test_a_table_without_the_columns_readers_need_fails_in_one_line(tmp_path):
    features(0).drop(columns=["financial"]).to_parquet(tmp_path / TABLES["features"])
    with pytest.raises(FinsaeError, match=r"lacks columns \['financial'\]") as e:
        read_features(tmp_path)
    one_line(e, tmp_path / TABLES["features"])
    # a reader's own extra columns (the label stage's n_active_docs) go through the same check and line
    features(0).to_parquet(tmp_path / TABLES["features"])  # no n_active_docs column
    assert len(read_features(tmp_path)) > 0
    with pytest.raises(FinsaeError, match=r"lacks columns \['n_active_docs'\]; rerun `python analyze.py`") as e:
        read_features(tmp_path, needs=("n_active_docs",))
    one_line(e, tmp_path / TABLES["features"])


def test_summary_reads_typed_and_fails_in_one_line_when_missing_or_bad(tmp_path):
    path = artifacts.summary_path(tmp_path)
    with pytest.raises(DataMissingError) as e:
        read_summary(tmp_path)
    one_line(e, path)
    s = AnalysisSummary(pair="p", base="a", domain="b", tag="t", seed_tag="t_seed1", layers=[0, 2], n_financial=7,
                        mean_overlap=0.5, mean_overlap_seed_ceiling=0.75)
    s.write(tmp_path)
    assert read_summary(tmp_path) == s
    for bad in ('{"pair": "p", "base": ', "[1, 2]", json.dumps({**s.to_dict(), "layers": ["0", 2]}),
                json.dumps({**s.to_dict(), "layers": "0,2"}), json.dumps({"pair": "p"})):
        path.write_text(bad)
        with pytest.raises(FinsaeError) as e:
            read_summary(tmp_path)
        one_line(e, path)


def test_findings_missing_fails_in_one_line(tmp_path):
    with pytest.raises(DataMissingError) as e:
        read_findings(tmp_path)
    one_line(e, artifacts.findings_path(tmp_path))
    artifacts.write_findings(tmp_path, "# findings\n")
    assert read_findings(tmp_path) == "# findings\n"

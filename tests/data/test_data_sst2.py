"""SST-2 (the control twin's task): counts and label balance of the real files, damaged and bad files."""

from __future__ import annotations

import gzip

import pytest
from ci_rules import skip_or_fail_without_data

from finsae.data import SST2_LABELS, load_sst2
from finsae.data._io import CorruptDataError, MalformedRowsWarning
from finsae.data.sources import SOURCES
from finsae.errors import DataMissingError, FinsaeError


@pytest.fixture(scope="module")
def sst2_dir(data_dir):
    if not all((data_dir / "general" / "sst2" / f"{s}.tsv.gz").is_file() for s in ("train", "dev")):
        skip_or_fail_without_data(f"real data folder {data_dir} lacks general/sst2/{{train,dev}}.tsv.gz")
    return data_dir


def _write(root, split: str, text: str) -> None:
    target = root / "general" / "sst2" / f"{split}.tsv.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(gzip.compress(text.encode("utf-8")))


def test_sst2_real_counts_and_balance(sst2_dir):
    train, dev = load_sst2("train", sst2_dir), load_sst2("dev", sst2_dir)
    assert (len(train), len(dev)) == (67_349, 872)
    for df in (train, dev):
        assert list(df.columns) == ["text", "label", "label_name"]
        assert df["label"].dtype == "int64" and set(df["label"]) == {0, 1}
        assert df.attrs["malformed_rows"] == 0
        assert (df["text"].str.len() > 0).all() and not df["text"].str.contains("\t|\n").any()
        assert 0.4 < df["label"].mean() < 0.6  # GLUE's SST-2: 55.8% positive in train, 50.9% in dev
        assert dict(zip(df["label"], df["label_name"], strict=True)) == SST2_LABELS
    assert train["text"].iloc[0] == "hide new secretions from the parental units"
    assert dev["text"].iloc[0] == "one long string of cliches ."
    assert load_sst2("validation", sst2_dir).equals(dev)


def test_sst2_malformed_rows_are_counted_and_skipped(tmp_path):
    _write(tmp_path, "train", 'label\tsentence\n1\tit \'s a "charming" film\r\n7\tbad label\n'
                              "no tab here\n0\t \n0\ta dull , dull ride\n")
    with pytest.warns(MalformedRowsWarning, match="3 malformed"):
        df = load_sst2("train", tmp_path)
    assert df["text"].tolist() == ['it \'s a "charming" film', "a dull , dull ride"]
    assert df["label"].tolist() == [1, 0]
    assert df.attrs["malformed_rows"] == 3


@pytest.mark.parametrize("content, match", [
    ("sentence\tlabel\nfine\t1\n", "header line"),
    ("", "header line"),
    ("label\tsentence\nx\ty\nno tab\n", "no 'label<TAB>sentence' row"),
])
def test_sst2_wrong_layout_is_one_clear_error(tmp_path, content, match):
    _write(tmp_path, "dev", content)
    with pytest.raises(FinsaeError, match=match) as err:
        load_sst2("dev", tmp_path)
    assert "python -m finsae.data.fetch --only sst2" in str(err.value)


def test_sst2_damaged_or_missing_file(tmp_path):
    with pytest.raises(DataMissingError, match="--only sst2"):
        load_sst2("train", tmp_path)
    target = tmp_path / "general" / "sst2" / "train.tsv.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(gzip.compress(b"label\tsentence\n1\tgood\n" * 50)[:40])  # truncated gzip
    with pytest.raises(CorruptDataError, match="train.tsv.gz is damaged"):
        load_sst2("train", tmp_path)
    target.write_bytes(gzip.compress(b"label\tsentence\n1\tcaf\xe9\n"))  # latin-1, not UTF-8
    with pytest.raises(CorruptDataError, match="not UTF-8"):
        load_sst2("train", tmp_path)
    assert target.read_bytes() == gzip.compress(b"label\tsentence\n1\tcaf\xe9\n")  # refused, left alone
    with pytest.raises(FinsaeError, match="split"):
        load_sst2("test", tmp_path)


def test_sst2_sources_name_both_files():
    targets = {s.target for s in SOURCES if s.name == "sst2"}
    assert targets == {"general/sst2/train.tsv.gz", "general/sst2/dev.tsv.gz"}

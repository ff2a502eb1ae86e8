"""Missing files give a DataMissingError that says where and how; fetch fails fast offline."""

from __future__ import annotations

import gzip
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

import finsae.data as fd
from finsae.data import fetch as fetch_mod
from finsae.data._io import CorruptDataError
from finsae.data.sources import SOURCES, source_names
from finsae.errors import DataMissingError, FinsaeError

LOADERS = [
    (lambda d: fd.load_phrasebank("50", d), "FinancialPhraseBank-v1.0.zip", "phrasebank"),
    (lambda d: fd.load_twitter_sentiment("train", d), "sent_train.csv", "twitter_fin_sentiment"),
    (lambda d: fd.load_stocknet_prices(d), "stocknet-dataset.tar.gz", "stocknet"),
    (lambda d: fd.load_stocknet_tweets_raw(d), "stocknet_tweets_raw_text.jsonl.gz", "stocknet_raw_text"),
    (lambda d: fd.load_stocknet_tweets_preprocessed(d), "stocknet-dataset.tar.gz", "stocknet"),
    (lambda d: fd.trading_calendar(d), "stocknet-dataset.tar.gz", "stocknet"),
    (lambda d: fd.load_reuters(d), "reuters21578.tar.gz", "reuters21578"),
    (lambda d: fd.load_wikitext("test", d), "test.txt.gz", "wikitext2"),
    (lambda d: fd.load_ag_news(d), "test.csv.gz", "ag_news"),
    (lambda d: fd.load_brown("text", d), "brown.zip", "brown"),
    (lambda d: fd.load_index_prices("sp500", d), "sp500.csv.gz", "index_prices"),
    (lambda d: fd.load_corpus("financial", d), "reuters21578.tar.gz", "reuters21578"),
    (lambda d: fd.load_corpus("stocknet_tweets", d), "stocknet_tweets_raw_text.jsonl.gz", "stocknet_raw_text"),
]


@pytest.mark.parametrize(("load", "fname", "source"), LOADERS)
def test_missing_file_message(tmp_path, load, fname, source):
    with pytest.raises(DataMissingError) as info:
        load(tmp_path)
    msg = str(info.value)
    assert fname in msg and str(tmp_path) in msg
    assert f"python -m finsae.data.fetch --only {source}" in msg and "FINSAE_DATA_DIR" in msg
    assert isinstance(info.value, FinsaeError) and Path(info.value.path).name == fname


ARCHIVE_LOADERS = [row for row in LOADERS if not row[1].endswith(".csv")]  # every zip, tar and gzip file read


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
@pytest.mark.parametrize(("load", "fname", "source"), ARCHIVE_LOADERS,
                         ids=[f"{i}-{row[1]}" for i, row in enumerate(ARCHIVE_LOADERS)])
def test_damaged_archive_names_the_file_and_the_fetch_command(tmp_path, data_dir, load, fname, source, damage):
    rel = next(s.target for s in SOURCES if s.name == source and s.target.endswith(fname))
    good = (data_dir / rel).read_bytes()
    bad = good[: len(good) // 2] if damage == "truncated" else b"\x1f\x8bPK" + bytes(range(256)) * 16
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / rel).write_bytes(bad)
    with pytest.raises(CorruptDataError) as info:
        load(tmp_path)
    msg = str(info.value)
    assert str(tmp_path / rel) in msg and "damaged or truncated" in msg and "\n" not in msg
    assert f"delete it, then get it with `python -m finsae.data.fetch --only {source}`" in msg
    assert isinstance(info.value, FinsaeError) and (tmp_path / rel).read_bytes() == bad  # nothing deleted


def test_missing_data_folder_via_env(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("FINSAE_DATA_DIR", str(missing))
    with pytest.raises(DataMissingError, match="does not exist"):
        fd.load_phrasebank()


def _run_fetch(*args: str, env_extra: dict | None = None, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, **(env_extra or {})}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "finsae.data.fetch", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    return proc, time.monotonic() - t0


def _network_up() -> bool:
    try:
        socket.create_connection(("github.com", 443), timeout=2).close()
        return True
    except OSError:
        return False


def test_fetch_list():
    proc, _ = _run_fetch("--list")
    assert proc.returncode == 0
    for url in ("https://github.com/yumoxu/stocknet-dataset",
                "huggingface.co/datasets/zeroshot/twitter-financial-news-sentiment",
                "archive.ics.uci.edu", "nltk_data"):
        assert url in proc.stdout
    assert set(source_names()) <= set(proc.stdout.split())


def test_fetch_hub_offline_fails_fast(tmp_path):
    proc, secs = _run_fetch("--data-dir", str(tmp_path), "--only", "phrasebank", env_extra={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode != 0 and secs < 30
    assert "HF_HUB_OFFLINE" in proc.stderr
    assert not (tmp_path / "financial_phrasebank").exists()


def test_fetch_no_network_fails_fast(tmp_path):
    if _network_up():
        pytest.skip("a network is reachable here; the offline path cannot be exercised")
    proc, secs = _run_fetch("--data-dir", str(tmp_path), "--timeout", "5")
    assert proc.returncode != 0 and secs < 30
    assert "no network" in proc.stderr and str(tmp_path) in proc.stderr
    assert proc.stderr.count("fetch: no network") == 1


def test_fetch_skips_present_files(data_dir):
    proc, _ = _run_fetch("--data-dir", str(data_dir))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("present  ") == len(SOURCES)


def test_download_refused_port_is_offline(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(fetch_mod.OfflineError):
        fetch_mod.download(f"http://127.0.0.1:{port}/x", tmp_path / "x", timeout=2)
    assert time.monotonic() - t0 < 10 and not (tmp_path / "x").exists()
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_derive_raw_text_from_archive(tmp_path):
    tweet = {"id_str": "42", "created_at": "Fri Mar 06 21:00:00 +0000 2015", "text": "$AAA to the moon",
             "lang": "en", "retweet_count": 3, "user": {"id_str": "7", "followers_count": 9}}
    data = (json.dumps(tweet) + "\n").encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("stocknet-dataset-master/tweet/raw/AAA/2015-03-07")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    archive = tmp_path / "stocknet" / "stocknet-dataset.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(buf.getvalue())
    out = tmp_path / "stocknet" / "stocknet_tweets_raw_text.jsonl.gz"
    assert fetch_mod.derive_raw_text(archive, out) == 1
    row = json.loads(gzip.open(out, "rt").readline())
    assert row == {"ticker": "AAA", "date": "2015-03-07", "id_str": "42", "created_at": "2015-03-06T21:00:00+00:00",
                   "user_id_str": "7", "text": "$AAA to the moon", "lang": "en", "retweet_count": 3,
                   "followers_count": 9}
    df = fd.load_stocknet_tweets_raw(tmp_path)
    assert len(df) == 1 and df["created_at"].iloc[0].isoformat() == "2015-03-06T21:00:00+00:00"

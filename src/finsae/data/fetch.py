"""Download the public data sets into a data directory: ``python -m finsae.data.fetch``.

    python -m finsae.data.fetch [--data-dir D] [--only NAME ...] [--list] [--timeout S]

Files already present are reported and skipped. Without a network it fails fast (one short
probe, ``--timeout`` seconds, default 5) with one message and exit code 1; Hugging Face Hub
files are not even tried when ``HF_HUB_OFFLINE=1``. ``--list`` prints the source table
(``finsae.data.sources.SOURCES``). The raw-text StockNet file is derived from the StockNet
archive's ``tweet/raw`` folder when that archive holds it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from finsae.data.sources import SOURCES, Source, source_names
from finsae.errors import FinsaeError
from finsae.paths import default_data_dir

DEFAULT_TIMEOUT = 5.0
USER_AGENT = "finsae-fetch/0.1 (+https://github.com/yumoxu/stocknet-dataset)"


class FetchError(FinsaeError):
    """A download failed (no network, HTTP error, offline hub)."""


class OfflineError(FetchError):
    """The network cannot be reached at all."""


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``HF_DATASETS_OFFLINE``) is set to a true value."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _resolve_host(host: str, port: int, timeout: float) -> None:
    """getaddrinfo with a wall-clock limit (urllib's timeout does not cover DNS)."""
    result: list = []

    def work() -> None:
        try:
            socket.getaddrinfo(host, port)
            result.append(None)
        except OSError as exc:
            result.append(exc)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout)
    if not result:
        raise OfflineError(f"cannot resolve {host} within {timeout:g} s")
    if isinstance(result[0], OSError):
        raise OfflineError(f"cannot resolve {host} ({result[0]})")


def download(url: str, dest: Path, timeout: float = DEFAULT_TIMEOUT, transform: str | None = None) -> int:
    """Download ``url`` to ``dest`` atomically (temp file, then rename); returns bytes written.

    ``transform="gzip"`` stores the payload gzip-compressed. Raises ``OfflineError`` when the host
    cannot be resolved or reached, ``FetchError`` for HTTP errors.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"not an http(s) URL: {url}")
    _resolve_host(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), timeout)
    dest.parent.mkdir(parents=True, exist_ok=True)
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw_out:
            out = gzip.GzipFile(fileobj=raw_out, mode="wb", mtime=0) if transform == "gzip" else raw_out
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    shutil.copyfileobj(resp, out, length=1 << 20)
            finally:
                if out is not raw_out:
                    out.close()
        os.replace(tmp, dest)
        return dest.stat().st_size
    except urllib.error.HTTPError as exc:
        raise FetchError(f"HTTP {exc.code} for {url}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OfflineError(f"cannot reach {parts.hostname} ({reason})") from exc
    finally:
        tmp.unlink(missing_ok=True)


_TW_TIME = re.compile(r"^\w{3} (\w{3}) (\d{2}) (\d{2}:\d{2}:\d{2}) ([+-]\d{2})(\d{2}) (\d{4})$")
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}


def _iso_created(value: str) -> str:
    m = _TW_TIME.match(value.strip())
    if not m:
        return value
    mon, day, hms, oh, om, year = m.groups()
    return f"{year}-{_MONTHS[mon]:02d}-{day}T{hms}{oh}:{om}"


def derive_raw_text(archive: Path, out_path: Path) -> int:
    """Write ``stocknet_tweets_raw_text.jsonl.gz`` from ``tweet/raw/{TICKER}/{DATE}`` in ``archive``.

    Each output line: ``{ticker, date, id_str, created_at (ISO, +00:00), user_id_str, text, lang,
    retweet_count, followers_count}``. Returns the number of rows; ``FetchError`` when the
    archive has no ``tweet/raw`` folder.
    """
    pattern = re.compile(r"(?:^|/)tweet/raw/([^/]+)/(\d{4}-\d{2}-\d{2})$")
    rows: list[tuple[str, str, int, dict]] = []
    with tarfile.open(archive, mode="r:*") as tf:
        for m in tf:
            hit = pattern.search(m.name) if m.isfile() else None
            if hit is None:
                continue
            f = tf.extractfile(m)
            for i, line in enumerate((f.read() if f else b"").decode("utf-8", errors="replace").splitlines()):
                if not line.strip():
                    continue
                try:
                    tw = json.loads(line)
                except ValueError:
                    continue
                user = tw.get("user") or {}
                rows.append((hit.group(1), hit.group(2), i, {
                    "ticker": hit.group(1), "date": hit.group(2), "id_str": str(tw.get("id_str", tw.get("id"))),
                    "created_at": _iso_created(str(tw.get("created_at", ""))),
                    "user_id_str": str(user.get("id_str", tw.get("user_id_str", ""))),
                    "text": tw.get("full_text") or tw.get("text") or "", "lang": tw.get("lang"),
                    "retweet_count": tw.get("retweet_count"), "followers_count": user.get("followers_count"),
                }))
    if not rows:
        raise FetchError(f"{archive} holds no tweet/raw files to derive the raw-text file from")
    rows.sort(key=lambda r: r[:3])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".part")
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        for *_, rec in rows:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    os.replace(tmp, out_path)
    return len(rows)


def format_table(sources: Sequence[Source] = SOURCES) -> str:
    """The source table as aligned text: name, target, license, URL."""
    head = ("name", "target (under data dir)", "license", "url")
    rows = [head] + [(s.name, s.target, s.license, s.url or f"(derived) {s.note}") for s in sources]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows)


def fetch(data_dir: Path, only: Sequence[str] | None = None, timeout: float = DEFAULT_TIMEOUT,
          log=print) -> int:
    """Fetch the selected sources into ``data_dir``; returns a process exit code (0 = all present)."""
    names = source_names()
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        log(f"fetch: unknown source(s) {unknown}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    selected = [s for s in SOURCES if not only or s.name in only]
    missing = []
    for s in selected:
        if (data_dir / s.target).is_file():
            log(f"present  {s.target}")
        else:
            missing.append(s)
    failed: list[str] = []
    for i, s in enumerate(missing):
        dest = data_dir / s.target
        if s.url is None:
            archive = data_dir / "stocknet/stocknet-dataset.tar.gz"
            try:
                n = derive_raw_text(archive, dest) if archive.is_file() else None
            except (FetchError, OSError, tarfile.TarError) as exc:
                n, reason = None, str(exc)
            else:
                reason = f"{archive} is missing"
            if n is None:
                failed.append(f"{s.target}: cannot be downloaded as-is ({s.note}) [{reason}]")
            else:
                log(f"derived  {s.target} ({n} rows)")
            continue
        if s.hub and hub_offline():
            failed.append(f"{s.target}: HF_HUB_OFFLINE=1 forbids downloading {s.url}")
            continue
        try:
            size = download(s.url, dest, timeout=timeout, transform=s.transform)
        except OfflineError as exc:
            rest = [m.target for m in missing[i:] if m.url is not None]
            log(f"fetch: no network ({exc}); {len(rest)} file(s) not downloaded: {', '.join(rest)}. "
                f"Copy them into {data_dir} or point FINSAE_DATA_DIR at a folder that has them.",
                file=sys.stderr)
            for f in failed:
                log(f"fetch: {f}", file=sys.stderr)
            return 1
        except FetchError as exc:
            failed.append(f"{s.target}: {exc}")
            continue
        log(f"fetched  {s.target} ({size} bytes) from {s.url}  [license: {s.license}]")
    for f in failed:
        log(f"fetch: {f}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 ok, 1 something not obtained, 2 usage)."""
    p = argparse.ArgumentParser(prog="python -m finsae.data.fetch", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=None,
                   help="target folder (default: $FINSAE_DATA_DIR, else ../shared/data, else ./data)")
    p.add_argument("--only", action="append", metavar="NAME", choices=source_names(),
                   help="fetch only this source (repeatable)")
    p.add_argument("--list", action="store_true", help="print the table of sources and exit")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="network timeout in seconds")
    args = p.parse_args(argv)
    if not args.timeout > 0:
        p.error(f"--timeout must be > 0 seconds, got {args.timeout:g}")
    if args.data_dir is not None and args.data_dir.exists() and not args.data_dir.is_dir():
        p.error(f"--data-dir {args.data_dir} is a file, not a folder")
    if args.list:
        print(format_table([s for s in SOURCES if not args.only or s.name in args.only]))
        return 0
    data_dir = (args.data_dir.expanduser().resolve() if args.data_dir else default_data_dir())
    print(f"data dir: {data_dir}")
    return fetch(data_dir, args.only, args.timeout)


if __name__ == "__main__":
    sys.exit(main())

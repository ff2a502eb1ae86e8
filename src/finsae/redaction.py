"""Secrets never reach a file: the one redaction of every config a command writes, and the one check of URLs.

Keys come from the environment only (``label.api_key_env`` names the variable, W&B reads ``WANDB_API_KEY``).
Everything a command writes that holds a config passes through :func:`redact` first: Hydra's ``.hydra/*.yaml``
(``finsae.glue.app.CheckBeforeWork``), the W&B run config and artifact metadata (``finsae.glue.tracking``), and
``finsae.reproduce``'s copy of a saved config. It masks a value under a secret-named key (:func:`is_secret_name`),
a credential inside any URL (:func:`url_credentials`: user-info, a secret-named query or fragment parameter), and
the value of a ``key=value`` override whose key is secret-named. Config values that are URLs are refused up front
when they hold a credential (``finsae.labeling.config``), so the masking is the second line, not the first.

Pure Python: no Hydra or W&B import (a core module; ``tests/test_core_imports.py``).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

SECRET_KEY = re.compile(r"key$|key_|secret|passw|(^|_)token$", re.IGNORECASE)
"""A config key that names a credential (``api_key``, ``openai_key``, ``apikey``, ``key_file``, ``secret``,
``password``, ``hf_token``); not ``tokens`` (a budget) nor ``exclude_keys`` (a list of config keys). Used to
redact what is written and to refuse secrets on the command line."""
URL_SECRET_PARAM = re.compile(r"(^|[-_.])(sig|signature|auth|authorization|credentials?|code)$", re.IGNORECASE)
"""URL parameters that carry a credential although their name is no secret-named key (signed URLs such as
``X-Amz-Signature``, ``sig``; OAuth ``code``)."""
REDACTED = "***redacted***"
URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
"""A URL inside any text (a config value, an override, a command line)."""
CONFIG_KEY = re.compile(r"[A-Za-z_][\w.]*")
"""A dotted config key, as an override names it (``label.api_key``)."""


def is_secret_name(key: str) -> bool:
    """A config key holding a credential; keys ending in ``_env`` name an environment variable instead."""
    name = str(key).rsplit(".", 1)[-1]
    return bool(SECRET_KEY.search(name)) and not name.endswith("_env")


def _secret_param(name: str) -> bool:
    return is_secret_name(name) or URL_SECRET_PARAM.search(name) is not None


def _params(part: str) -> list[tuple[str, str, str]]:
    """``a=1&b=2`` as (name, '=', value) triples, in order (``;`` separates too)."""
    return [piece.partition("=") for piece in re.split(r"[&;]", part)] if part else []


def url_credentials(url: str) -> str | None:
    """Where ``url`` holds a credential (``user-info``, ``query parameter 'api_key'``, ``fragment parameter
    'token'``), else None. A URL that cannot be parsed is taken as holding one."""
    try:
        parts = urlsplit(str(url))
    except ValueError:  # an unbalanced [ in the host
        return "a part that cannot be parsed"
    if "@" in parts.netloc:
        return "user-info (user:password@host)"
    for where, part in (("query", parts.query), ("fragment", parts.fragment)):
        secret = next((name for name, _, _ in _params(part) if _secret_param(name)), None)
        if secret is not None:
            return f"{where} parameter {secret!r}"
    return None


def _mask_params(part: str) -> str:
    return "&".join(f"{name}={REDACTED}" if sep and _secret_param(name) else f"{name}{sep}{value}"
                    for name, sep, value in _params(part))


def _mask_url(url: str) -> str:
    if url_credentials(url) is None:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = f"{REDACTED}@{parts.netloc.rsplit('@', 1)[1]}" if "@" in parts.netloc else parts.netloc
    return urlunsplit((parts.scheme, netloc, parts.path, _mask_params(parts.query), _mask_params(parts.fragment)))


def redact_text(text: str) -> str:
    """``text`` with every URL's credentials masked, and the value masked when it is a ``key=value`` override of
    a secret-named key (``+label.api_key=...``)."""
    text = URL.sub(lambda m: _mask_url(m.group()), text)
    head, sep, _ = text.partition("=")
    key = head.lstrip("+~").split("@", 1)[0]
    if sep and CONFIG_KEY.fullmatch(key) and is_secret_name(key):
        return f"{head}={REDACTED}"
    return text


def redact(obj: Any) -> Any:
    """Copy of a nested dict/list with secrets masked: every value under a secret-named key (keys ending in
    ``_env`` name a variable, kept), credentials in URLs, secret-named overrides (:func:`redact_text`)."""
    if isinstance(obj, dict):
        return {k: _masked(v) if is_secret_name(k) else redact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


def _masked(value: Any) -> Any:
    """``value`` (held by a secret-named key) with every leaf masked; empty values and flags say nothing."""
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value if value is None or value == "" or isinstance(value, bool) else REDACTED


def secret_paths(obj: Any, prefix: str = "") -> list[str]:
    """The dotted keys of ``obj`` whose values :func:`redact` masks (``label.base_url``, ``llm_api_key``)."""
    return _changed(obj, redact(obj), prefix)


def _changed(old: Any, new: Any, prefix: str) -> list[str]:
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return [p for k in old for p in _changed(old[k], new.get(k), f"{prefix}{k}.")]
    if isinstance(old, (list, tuple)) and isinstance(new, list):
        return [p for i, (a, b) in enumerate(zip(old, new, strict=True)) for p in _changed(a, b, f"{prefix}{i}.")]
    return [prefix.rstrip(".")]


def redact_yaml_file(path: str | Path) -> bool:
    """Rewrite the YAML file ``path`` with its secrets masked, when it holds one (a file without any is left
    byte for byte); returns whether it was rewritten. For files another program wrote (Hydra's ``.hydra/``)."""
    import yaml

    path = Path(path)
    data = yaml.safe_load(path.read_text())
    clean = redact(data)
    if clean == data:
        return False
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(yaml.safe_dump(clean, sort_keys=False))
    os.replace(tmp, path)
    return True


def credentials_message(key: str, where: str, fix: str) -> str:
    """The one line that refuses a URL holding a credential (``where``: what :func:`url_credentials` found)."""
    return f"{key} holds credentials (in its {where}): refused, so that they are never printed or saved; {fix}"


"""User-facing errors: one clear line, caught by the entry points (no traceback wall)."""

from __future__ import annotations


class FinsaeError(Exception):
    """An error a user can fix (missing file, bad config, offline hub, corrupt cache)."""


class DataMissingError(FinsaeError):
    """A data file or folder is not where it should be."""

    def __init__(self, what: str, path, how_to_get: str):
        self.path = path
        super().__init__(f"{what} not found at {path}. {how_to_get}")


class ConfigError(FinsaeError):
    """A configuration value is out of range or inconsistent."""


class OfflineModelError(FinsaeError):
    """Model weights are not available locally and the hub cannot be reached."""


class CacheCorruptError(FinsaeError):
    """A cached artifact failed its integrity check."""


def require(cond: bool, msg: str) -> None:
    """Raise :class:`ConfigError` with ``msg`` unless ``cond`` (the one-line check every config schema uses)."""
    if not cond:
        raise ConfigError(msg)

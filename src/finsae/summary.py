"""Typed stage summaries: one dataclass per stage, written as ``summary.json`` and read back through the same
type (by the report, by ``skip_if_done``), never by string keys spread over files.

The file is plain JSON: a NaN (a number that is undefined for this run) is written as ``null``, with the
reason beside it in the file's ``null_reasons`` object (field, or path inside a field, -> why; see
:meth:`StageSummary.null_reasons`), and a ``float`` field read back as NaN. Every field is checked against its
annotation on read, so a damaged or hand-edited file is refused in one line naming the file and the field
instead of being used wrongly later (a string iterated as a list, a text taken for a token count).

Every summary names the run that made it (``run_dir``, ``wandb_run_id``: the base's two fields, so
``python -m finsae.reproduce ARTIFACT_FOLDER`` finds the run). A stage's glue opens its run inside
:func:`run_origin` (``finsae.glue.tracking.stage_run`` does), and every summary made meanwhile is stamped with
it; summaries written before they were recorded read back with both fields empty."""

from __future__ import annotations

import contextlib
import functools
import math
import types
import typing
from collections.abc import Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union

from finsae.atomic import read_json, write_json
from finsae.errors import FinsaeError

SUMMARY_FILE = "summary.json"
NULL_REASONS_KEY = "null_reasons"
"""The key of ``summary.json`` that says why each null number is null (not a field: readers skip it)."""
UNDEFINED = "undefined for this run (NaN)"
"""The reason of a NaN whose summary names none of its own."""


def is_published(folder: str | Path) -> bool:
    """A finished stage run: every stage publishes its folder in one rename with ``summary.json`` in it (or
    writes that file last), so its presence is the one "done" check (``skip_if_done``, run guards)."""
    return (Path(folder) / SUMMARY_FILE).is_file()


S = TypeVar("S", bound="StageSummary")


@dataclass(frozen=True)
class RunOrigin:
    """The run a stage is inside: what its summaries record."""

    run_dir: str
    """The run folder, relative to the project root where it lies inside it, else as given."""
    wandb_run_id: str
    """The W&B run's id ("" when W&B is off)."""


_current_origin: RunOrigin | None = None


def portable_run_dir(run_dir: str | Path) -> str:
    """``run_dir`` relative to the project root when it lies inside it, else as given."""
    from finsae.paths import PROJECT_ROOT

    path = Path(run_dir)
    try:
        return path.resolve().relative_to(PROJECT_ROOT.resolve()).as_posix()
    except ValueError:
        return str(run_dir)


@contextlib.contextmanager
def run_origin(run_dir: str | Path, wandb_run_id: str = "") -> Iterator[RunOrigin]:
    """Stamp every summary made inside the block with this run (the previous origin back afterwards)."""
    global _current_origin
    before, _current_origin = _current_origin, RunOrigin(portable_run_dir(run_dir), wandb_run_id or "")
    try:
        yield _current_origin
    finally:
        _current_origin = before


@dataclass
class StageSummary:
    """Base of every stage's summary record."""

    MAKES: ClassVar[str] = "the stage that wrote it"
    """The command that writes this summary (what a reader of a damaged one is told to rerun)."""
    NAN_REASONS: ClassVar[dict[str, str]] = {}
    """Field -> why it can be NaN (undefined), for the ``null_reasons`` of ``summary.json``; a field not named
    here is written with :data:`UNDEFINED`."""

    run_dir: str = field(default="", kw_only=True)
    """The run folder that made it (relative to the project root where inside it; "" when not recorded)."""
    wandb_run_id: str = field(default="", kw_only=True)
    """The W&B run that made it ("" when W&B was off or it was not recorded)."""

    def __post_init__(self) -> None:
        if _current_origin is not None and not self.run_dir:
            self.run_dir = _current_origin.run_dir
            self.wandb_run_id = self.wandb_run_id or _current_origin.wandb_run_id

    @property
    def objective(self) -> float | None:
        """The number a Hydra sweeper minimises (None: the stage has none)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def results(self) -> dict[str, Any]:
        """Its fields less the run that made it (``run_dir``, ``wandb_run_id``: a machine's run folder, for
        reproduce, never for the pages)."""
        return {k: v for k, v in self.to_dict().items() if k not in ("run_dir", "wandb_run_id")}

    def scalars(self) -> dict[str, float | int | str]:
        """The fields that are plain numbers or strings (what W&B summaries and artifact metadata take)."""
        out = {}
        for k, v in self.to_dict().items():
            if isinstance(v, bool) or v is None:
                continue
            if isinstance(v, (int, str)) or (isinstance(v, float) and math.isfinite(v)):
                out[k] = v
        return out

    def null_reasons(self) -> dict[str, str]:
        """Why each NaN of this summary is undefined: its path (``fvu``, ``stocknet.price.mcc``,
        ``strategies[2].sharpe``) -> the reason (:attr:`NAN_REASONS` of its top-level field, else
        :data:`UNDEFINED`). A stage whose reasons depend on the run overrides this."""
        return {path: self.NAN_REASONS.get(top, UNDEFINED) for top, path in nan_paths(self.to_dict())}

    def write(self, *dirs: Path) -> None:
        """Write ``summary.json`` into each of ``dirs`` (atomically: a reader never sees half a file): strict
        JSON, each NaN a ``null`` whose reason is in ``null_reasons``."""
        record = nan_to_null(self.to_dict())
        reasons = self.null_reasons()
        if reasons:
            record[NULL_REASONS_KEY] = reasons
        for d in dirs:
            Path(d).mkdir(parents=True, exist_ok=True)
            write_json(Path(d) / SUMMARY_FILE, record)

    @classmethod
    def _rerun(cls) -> str:
        return f"`{cls.MAKES}`" if cls.MAKES.startswith("python") else cls.MAKES

    @classmethod
    def read(cls: type[S], path: str | Path) -> S:
        """The summary in ``path`` (a folder or its summary.json); one clear error when missing or corrupt."""
        path = Path(path)
        if path.is_dir() or path.name != SUMMARY_FILE:
            path = path / SUMMARY_FILE
        raw = read_json(path, cls.__name__, f"rerun {cls._rerun()}")
        if not isinstance(raw, dict):
            raise FinsaeError(f"{path} is not a {cls.__name__} (not a JSON object); rerun {cls._rerun()}")
        missing = sorted(f.name for f in fields(cls)
                         if f.name not in raw and f.default is MISSING and f.default_factory is MISSING)
        if missing:
            raise FinsaeError(f"{path} is not a {cls.__name__} (missing {missing}); rerun {cls._rerun()}")
        hints = _field_types(cls)
        values = {}
        for name, value in raw.items():
            if name not in hints:
                continue  # a field of an older or newer version of the summary
            ok, values[name] = _typed(value, hints[name])
            if not ok:
                raise FinsaeError(f"{path}: {name!r} is {_short(value)}, not {_describe(hints[name])}; "
                                  f"rerun {cls._rerun()}")
        summary = cls(**values)
        summary.run_dir, summary.wandb_run_id = values.get("run_dir", ""), values.get("wandb_run_id", "")
        return summary  # as the file says (not stamped with the run reading it)


def nan_to_null(value: Any) -> Any:
    """``value`` with every NaN float (at any depth) replaced by None, so the file is plain JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: nan_to_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_null(v) for v in value]
    return value


def nan_paths(value: Any, path: str = "", top: str = "") -> Iterator[tuple[str, str]]:
    """``(top-level key, path)`` of every NaN float in the record ``value`` (a dict at the top), at any depth:
    ``fvu``, ``stocknet.price.mcc``, ``strategies[2].sharpe``."""
    if isinstance(value, float) and math.isnan(value):
        yield top, path
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from nan_paths(v, f"{path}.{k}" if path else str(k), top or str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from nan_paths(v, f"{path}[{i}]", top)


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """Each field's resolved annotation (the modules use ``from __future__ import annotations``)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _typed(value: Any, hint: Any) -> tuple[bool, Any]:
    """Whether the JSON ``value`` fits the annotation ``hint``, and the value to store (null in a ``float``
    field is NaN, an integral number in an ``int`` field is an int)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True, value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return True, None
        for arg in (a for a in args if a is not type(None)):
            ok, out = _typed(value, arg)
            if ok:
                return True, out
        return False, value
    if hint is float:
        if value is None:
            return True, math.nan
        return (isinstance(value, (int, float)) and not isinstance(value, bool)), value
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return (isinstance(value, int) and not isinstance(value, bool)), value
    if hint in (str, bool):
        return isinstance(value, hint), value
    if (origin or hint) is list:
        if not isinstance(value, list):
            return False, value
        checked = [_typed(v, args[0]) if args else (True, v) for v in value]
        return all(ok for ok, _ in checked), [v for _, v in checked]
    if (origin or hint) is dict:
        if not isinstance(value, dict):
            return False, value
        checked = {k: _typed(v, args[1]) if args else (True, v) for k, v in value.items()}
        return all(ok for ok, _ in checked.values()), {k: v for k, (_, v) in checked.items()}
    raise TypeError(f"summary field annotation {hint!r} is not one the reader checks; add it to _typed")


def _describe(hint: Any, plural: bool = False) -> str:
    """The annotation in words, for the error line (``plural``: as the items of a list or object)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a, plural) for a in args)
    if (origin or hint) in (list, dict):
        kind = "list" if (origin or hint) is list else "object"
        noun = f"{kind}s" if plural else f"a{'n' if kind == 'object' else ''} {kind}"
        return f"{noun} of {_describe(args[-1], plural=True)}" if args else noun
    words = {int: ("an integer", "integers"), float: ("a number", "numbers"), str: ("a string", "strings"),
             bool: ("true or false", "true/false values")}
    return words[hint][plural] if hint in words else str(hint)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

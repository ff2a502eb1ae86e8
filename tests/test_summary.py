"""Every stage's ``summary.json`` is read through one typed reader: each field checked against its annotation
(a damaged or hand-edited file is refused naming the file and the field), and NaN stored as JSON null."""

from __future__ import annotations

import json
import math
import typing
from dataclasses import dataclass, fields
from typing import ClassVar

import pytest

from finsae.analysis.summary import AnalysisSummary
from finsae.errors import FinsaeError
from finsae.finetune.summary import FinetuneSummary
from finsae.labeling.summary import LabelSummary
from finsae.sae.summary import SaeSummary
from finsae.summary import NULL_REASONS_KEY, SUMMARY_FILE, UNDEFINED, StageSummary
from finsae.trading.summary import BacktestSummary

SUMMARIES = [SaeSummary, FinetuneSummary, AnalysisSummary, LabelSummary, BacktestSummary]


def _sample(hint):
    """A value of the annotation ``hint`` (what a stage would write)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if args and type(None) in args:
        return _sample(next(a for a in args if a is not type(None)))
    if (origin or hint) is list:
        return [_sample(args[0])] if args else [1]
    if (origin or hint) is dict:
        return {"a": _sample(args[1])} if args else {"a": 1.5}
    return {int: 3, float: 0.25, str: "x", bool: True, typing.Any: 0.5}[hint]


def _wrong(hint):
    """A JSON value that does not fit ``hint``."""
    takes_str = hint is str or str in typing.get_args(hint)
    return 7 if takes_str else "lots"


def _full(cls) -> dict:
    hints = typing.get_type_hints(cls)
    return {f.name: _sample(hints[f.name]) for f in fields(cls)}


def test_every_stage_summary_is_covered():
    # the stages' summaries, not the tests' own
    stages = {c for c in StageSummary.__subclasses__() if c.__module__.startswith("finsae.")}
    assert stages == set(SUMMARIES)


@pytest.mark.parametrize("cls", SUMMARIES, ids=lambda c: c.__name__)
def test_round_trip_through_the_typed_reader(tmp_path, cls):
    summary = cls(**_full(cls))
    summary.write(tmp_path)
    assert cls.read(tmp_path) == summary


@pytest.mark.parametrize("cls", SUMMARIES, ids=lambda c: c.__name__)
def test_every_field_of_the_wrong_type_is_refused_naming_file_and_field(tmp_path, cls):
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        raw = _full(cls) | {f.name: _wrong(hints[f.name])}
        (tmp_path / SUMMARY_FILE).write_text(json.dumps(raw))
        with pytest.raises(FinsaeError) as err:
            cls.read(tmp_path)
        assert str(tmp_path / SUMMARY_FILE) in str(err.value) and repr(f.name) in str(err.value), f.name


@pytest.mark.parametrize("cls, field_name, value, expected", [
    (SaeSummary, "tokens", "lots", "not an integer"),
    (LabelSummary, "n_labelled", "many", "not an integer"),
    (BacktestSummary, "sets", "price_count", "not a list of strings"),
    (BacktestSummary, "sets", ["price", 3], "not a list of strings"),
    (AnalysisSummary, "docs", {"financial": "ten"}, "not an object of integers"),
    (AnalysisSummary, "layers", [1, True], "not a list of integers"),
    (SaeSummary, "fvu", "0.1", "not a number"),
    (SaeSummary, "model", None, "not a string"),
    (FinetuneSummary, "mlm_final_loss", "low", "not a number or null"),
    (BacktestSummary, "strategies", [{"sharpe": 1.0}, "x"], "not a list of objects"),
])
def test_the_issue_rows_are_refused(tmp_path, cls, field_name, value, expected):
    (tmp_path / SUMMARY_FILE).write_text(json.dumps(_full(cls) | {field_name: value}))
    with pytest.raises(FinsaeError, match=expected) as err:
        cls.read(tmp_path)
    assert f"{tmp_path / SUMMARY_FILE}: {field_name!r}" in str(err.value) and "rerun" in str(err.value)


def test_integral_numbers_in_int_fields_and_ints_in_float_fields_are_read(tmp_path):
    (tmp_path / SUMMARY_FILE).write_text(json.dumps(_full(SaeSummary) | {"tokens": 8192.0, "lr": 1}))
    s = SaeSummary.read(tmp_path)
    assert s.tokens == 8192 and type(s.tokens) is int and s.lr == 1


def test_nan_is_written_as_null_and_read_back_as_nan(tmp_path):
    values = {k: v for k, v in _full(SaeSummary).items() if k != "loss_recovered"} | {"fvu": math.nan}
    SaeSummary(**values).write(tmp_path)
    text = (tmp_path / SUMMARY_FILE).read_text()
    raw = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in summary.json"))
    assert raw["fvu"] is None and raw["loss_recovered"] is None  # loss_recovered defaults to NaN
    s = SaeSummary.read(tmp_path)
    assert math.isnan(s.fvu) and math.isnan(s.loss_recovered) and s.tokens == 3


def _strict(text: str) -> dict:
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in summary.json"))


def test_every_nan_is_null_with_its_reason_beside_it(tmp_path):
    """Issue 34 section 4: no bare NaN; each null number says why (field or path -> reason), the typed reader
    skips the reasons and reads NaN back; a summary without NaN writes no reasons."""
    @dataclass
    class Scored(StageSummary):
        NAN_REASONS: ClassVar[dict[str, str]] = {"auroc": "one class only in the held-out set"}
        auroc: float
        fvu: float
        sets: dict[str, dict[str, float]]
        rows: list[dict[str, float]]

    Scored(math.nan, 0.5, {"price": {"mcc": math.nan, "acc": 0.6}},
           [{"sharpe": 1.0}, {"sharpe": math.nan}]).write(tmp_path)
    raw = _strict((tmp_path / SUMMARY_FILE).read_text())
    assert raw["auroc"] is None and raw["sets"]["price"]["mcc"] is None and raw["rows"][1]["sharpe"] is None
    assert raw[NULL_REASONS_KEY] == {"auroc": "one class only in the held-out set",
                                     "sets.price.mcc": UNDEFINED, "rows[1].sharpe": UNDEFINED}
    back = Scored.read(tmp_path)
    assert math.isnan(back.auroc) and math.isnan(back.sets["price"]["mcc"])
    assert math.isnan(back.rows[1]["sharpe"])
    assert back.fvu == 0.5 and back.sets["price"]["acc"] == 0.6
    Scored(0.7, 0.5, {}, []).write(tmp_path / "defined")
    assert NULL_REASONS_KEY not in _strict((tmp_path / "defined" / SUMMARY_FILE).read_text())


@pytest.mark.parametrize("cls", SUMMARIES, ids=lambda c: c.__name__)
def test_every_stage_summary_gives_its_nan_fields_a_reason(tmp_path, cls):
    hints = typing.get_type_hints(cls)
    nan_fields = [f.name for f in fields(cls) if hints[f.name] is float]
    cls(**_full(cls) | dict.fromkeys(nan_fields, math.nan)).write(tmp_path)
    raw = _strict((tmp_path / SUMMARY_FILE).read_text())
    reasons = raw.get("null_reasons", {})
    assert all(raw[n] is None and reasons.get(n) for n in nan_fields), (nan_fields, reasons)
    back = cls.read(tmp_path)
    assert all(math.isnan(getattr(back, n)) for n in nan_fields)


def test_nested_nan_is_null_and_optional_null_stays_none(tmp_path):
    b = BacktestSummary(**_full(BacktestSummary) | {"stocknet": {"price": {"mcc": math.nan}}})
    b.write(tmp_path / "b")
    assert json.loads((tmp_path / "b" / SUMMARY_FILE).read_text())["stocknet"] == {"price": {"mcc": None}}
    f = FinetuneSummary(**_full(FinetuneSummary) | {"mlm_final_loss": None})
    f.write(tmp_path / "f")
    assert FinetuneSummary.read(tmp_path / "f").mlm_final_loss is None


def test_old_files_with_bare_nan_still_read(tmp_path):
    (tmp_path / SUMMARY_FILE).write_text(json.dumps(_full(SaeSummary) | {"fvu": math.nan}))
    assert "NaN" in (tmp_path / SUMMARY_FILE).read_text()
    assert math.isnan(SaeSummary.read(tmp_path).fvu)


@pytest.mark.parametrize("cls", SUMMARIES, ids=lambda c: c.__name__)
def test_every_summary_names_its_run_and_old_files_read_without(tmp_path, cls):
    """Issue 34: the run folder and W&B run id that made an artifact are in its summary.json; a file written
    before they were recorded still reads (both empty), and reading never stamps the reader's own run."""
    from finsae.summary import run_origin

    values = {k: v for k, v in _full(cls).items() if k not in ("run_dir", "wandb_run_id")}
    with run_origin(tmp_path / "outputs" / "run1", "abc123"):
        made = cls(**values)
    made.write(tmp_path / "new")
    raw = json.loads((tmp_path / "new" / SUMMARY_FILE).read_text())
    assert (raw["run_dir"], raw["wandb_run_id"]) == (str(tmp_path / "outputs" / "run1"), "abc123")
    del raw["run_dir"], raw["wandb_run_id"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / SUMMARY_FILE).write_text(json.dumps(raw))
    with run_origin(tmp_path / "reader", "zzz"):
        old, new = cls.read(tmp_path / "old"), cls.read(tmp_path / "new")
    assert (old.run_dir, old.wandb_run_id) == ("", "")
    assert (new.run_dir, new.wandb_run_id) == (str(tmp_path / "outputs" / "run1"), "abc123")

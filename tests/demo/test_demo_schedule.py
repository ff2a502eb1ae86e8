"""bench/demo_schedule.py replays a plan through the scheduler's rule: dependencies, slots, plan order with
the first ready job that does not fit waiting for room; unmeasured jobs take their kind's median."""

import importlib.util
import json
from pathlib import Path

import pytest

from finsae.demo.scheduler import Job

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("demo_schedule", ROOT / "bench" / "demo_schedule.py")
demo_schedule = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo_schedule)


def _job(name, deps=(), slots=1):
    return Job(name, name.split(" ")[0], ["true"], deps=tuple(deps), slots=slots)


def test_replay_follows_dependencies_slots_and_plan_order():
    jobs = [_job("a"), _job("b"), _job("c", ["b"]), _job("wide", ["a"], slots=2), _job("d")]
    secs = {"a": 10, "b": 30, "c": 5, "wide": 20, "d": 4}
    span = demo_schedule.replay(jobs, secs, slots=2)
    assert span["a"] == (0, 10) and span["b"] == (0, 30)
    # from 10 the two-slot job is ready but does not fit: d, behind it in the plan, waits with a core free;
    # c, ahead of it, starts when b ends
    assert span["c"] == (30, 35) and span["wide"] == (35, 55) and span["d"] == (55, 59)


def test_unmeasured_jobs_take_their_kinds_median_and_a_kind_never_measured_is_refused(tmp_path):
    timing = {"stages": {"SAEs": {"jobs": {"sae m L0": {"status": "ran", "seconds": 60},
                                           "sae m L1": {"status": "ran", "seconds": 80},
                                           "sae m L2": {"status": "cached", "seconds": 0},
                                           "sae crosscoder_m L0": {"status": "ran", "seconds": 150}}}}}
    (tmp_path / "t.json").write_text(json.dumps(timing))
    seconds = demo_schedule.measured([tmp_path / "t.json"])
    assert seconds == {"sae m L0": 60.0, "sae m L1": 80.0, "sae crosscoder_m L0": 150.0}
    jobs = [_job(n) for n in ("sae m L0", "sae m L1", "sae m L2", "sae crosscoder_m L1")]
    secs, guessed = demo_schedule.durations(jobs, seconds)
    assert secs["sae m L2"] == 70 and secs["sae crosscoder_m L1"] == 150
    assert guessed == ["sae m L2", "sae crosscoder_m L1"]
    with pytest.raises(SystemExit, match="no time for 'analyze'"):
        demo_schedule.durations([_job("analyze")], seconds)

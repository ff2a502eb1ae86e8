"""``python -m finsae.demo --profile full``: the default study (:func:`finsae.demo.plan.demo_jobs`) and what
its time budget leaves out (issue 33, "Budget and profiles"):

* the crosscoder's **dictionary-size sweep** at :data:`SWEEP_LAYERS`: 3,072 and 12,288 latents beside the
  default 768 (:data:`SWEEP`; k grows with the square root of the size, so the share of latents a token uses
  falls as the dictionary grows: 4.2%, 2.1%, 1.0%), tagged ``demo_sweep{latents}``
  (:func:`finsae.analysis.crosscoder_sweep.sweep_tag`), read by the pair's analysis into
  ``crosscoder_sweep.parquet``. Each trains on the default's token budget; the table says whether each size
  meets the quality bar (FVU <= 0.2, dead < 1%), so a cheaper run (``sae.tokens``) is judged by it;
* the **control pairs' feature diffing at every layer** (the default runs it at
  :data:`~finsae.demo.plan.CONTROL_LAYERS`): each control twin's SAEs (seeds 0 and 1), the pair's crosscoder
  (seeds 0 and 1) and its warm starts (domain and control) at every layer, and each control pair's analysis
  over all layers.

An analysis already published by a default run is redone (its layers whose SAEs are unchanged are reused) once
an SAE it now reads is newer than its summary. ``--dry-run --profile full`` lists every job.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from finsae.analysis.crosscoder_sweep import sweep_tag
from finsae.demo.plan import (
    BASE, CONTROL_PAIRS, CROSSCODER, CROSSCODER_LAYER, LAYER_SAE, LAYERS, PAIR, TWIN, SaeRun, demo_jobs,
)
from finsae.demo.scheduler import Job
from finsae.paths import PROJECT_ROOT, analysis_dir, crosscoder_name, outputs_root, sae_dir
from finsae.summary import SUMMARY_FILE, is_published

PROFILES = ("default", "full")
"""``--profile``: the default study (``make demo``) or the full one (this module)."""
TAG = "demo"
MODEL_WIDTH = 384
"""The demo pair's hidden size: a crosscoder has ``sae.expansion_factor x`` this many latents."""
SWEEP_LAYERS = (3, 4)
SWEEP = ((3072, 64), (12288, 128))
"""(latents, k) of the sweep's crosscoders beside the default's (768, 32)."""


def full_jobs(artifacts: Path, python: str = sys.executable, root: Path = PROJECT_ROOT,
              run_stamp: str = "run", results_dir: Path | None = None,
              readme: Path | None = None) -> list[Job]:
    """The jobs of ``--profile full``: :func:`~finsae.demo.plan.demo_jobs` with the sweep and the control
    pairs' feature diffing at every layer; the analyses wait for (and are redone after) the SAEs they read."""
    artifacts = Path(artifacts)
    jobs = demo_jobs(artifacts, python, root, run_stamp, results_dir, readme)
    names = {j.name for j in jobs}
    train = _Trainer(artifacts, python, root, outputs_root() / "demo" / run_stamp, names)
    new = [*sweep_jobs(train, jobs), *(j for pair in CONTROL_PAIRS for j in control_jobs(train, jobs, pair))]
    at = next(i for i, j in enumerate(jobs) if j.stage == "analyze")  # the SAEs first, in plan order
    jobs[at:at] = new
    analyses = {"analyze": (PAIR, train.sweep_names, ())}
    for pair, models in CONTROL_PAIRS.items():  # the default's SAEs of its models at the other layers too
        defaults = [j.name for j in jobs if j.stage == "SAEs" and j.name.split(" ")[1] in models]
        analyses[f"analyze {pair}"] = (pair, train.pair_names.get(pair, set()), defaults)
    out = []
    for j in jobs:
        if j.name in analyses:
            pair, after, also = analyses[j.name]
            j = j if pair == PAIR else _all_layers(j)
            j = dataclasses.replace(j, deps=tuple(dict.fromkeys((*j.deps, *also))))
            j = _redo_after(j, sorted(after), train, analysis_dir(artifacts, pair))
        out.append(j)
    return out


@dataclasses.dataclass
class _Trainer:
    """Makes the ``train.py`` jobs of this profile the way :func:`~finsae.demo.plan.demo_jobs` makes its own
    (same entry point, store and Hydra folders), skipping a job the default plan already has."""

    artifacts: Path
    python: str
    root: Path
    outputs: Path
    known: set[str]
    sweep_names: set[str] = dataclasses.field(default_factory=set)
    pair_names: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    summaries: dict[str, Path] = dataclasses.field(default_factory=dict)
    """Job name -> the SAE folder it publishes."""

    def job(self, run: SaeRun, deps: tuple[str, ...]) -> Job | None:
        if run.name in self.known:
            return None
        self.known.add(run.name)
        folder = sae_dir(self.artifacts, run.model, run.layer, run.tag)
        self.summaries[run.name] = folder
        hydra = self.outputs / run.name.replace(" ", "_")
        command = [self.python, str(self.root / "train.py"), *run.overrides(self.artifacts),
                   f"paths.artifacts={self.artifacts}", f"hydra.run.dir={hydra}"]
        return Job(run.name, "SAEs", command, deps=tuple(dict.fromkeys(deps)),
                   done=lambda: is_published(folder))


def _first(jobs: list[Job], model: str) -> str:
    """The default plan's first SAE job of ``model`` (the one that builds its activation cache)."""
    name = next((j.name for j in jobs if j.stage == "SAEs" and j.name.startswith(f"sae {model} L")), None)
    if name is None:
        raise ValueError(f"the default plan trains no SAE of {model}: nothing builds its activation cache")
    return name


def sweep_jobs(train: _Trainer, jobs: list[Job]) -> list[Job]:
    """The pair's crosscoders of :data:`SWEEP` at :data:`SWEEP_LAYERS`."""
    out = []
    deps = (_first(jobs, BASE), _first(jobs, TWIN))
    for layer in SWEEP_LAYERS:
        for latents, k in SWEEP:
            run = SaeRun(CROSSCODER, layer, 0, sweep_tag(TAG, latents),
                         settings=(f"sae.expansion_factor={latents // MODEL_WIDTH}", f"sae.k={k}"))
            job = train.job(run, deps)
            if job is not None:
                train.sweep_names.add(run.name)
                out.append(job)
    return out


def control_jobs(train: _Trainer, jobs: list[Job], pair: str) -> list[Job]:
    """Control pair ``pair``'s SAEs at every layer: the twin's (seeds 0, 1), the pair's crosscoder (seeds 0,
    1) and the warm starts from the pair's base SAE (domain on the twin, control on the base)."""
    base, twin = CONTROL_PAIRS[pair]
    xc = crosscoder_name(base, twin)
    caches = (_first(jobs, base), _first(jobs, twin))
    made = []
    for layer in LAYERS:
        for seed, tag in ((0, TAG), (1, f"{TAG}_seed1")):
            own = SaeRun(twin, layer, seed, tag, settings=LAYER_SAE.get(layer, ()))
            made.append(train.job(own, (caches[1],)))
            made.append(train.job(SaeRun(xc, layer, seed, tag, base=base, twin=twin, pair=pair,
                                         settings=CROSSCODER_LAYER.get(layer, ())), caches))
        for model, tag in ((twin, f"{TAG}_warm_domain"), (base, f"{TAG}_warm_control")):
            run = SaeRun(model, layer, 1, tag, warm=True, base=base, settings=LAYER_SAE.get(layer, ()))
            made.append(train.job(run, (caches[0 if model == base else 1], SaeRun(base, layer).name)))
    out = [j for j in made if j is not None]
    train.pair_names[pair] = {j.name for j in out}
    return out


def _newer_than_sources(folder: Path, sources: list[Path]):
    """Done: ``folder`` published, and its summary at least as new as every published SAE in ``sources``."""
    def done() -> bool:
        if not is_published(folder):
            return False
        mine = (folder / SUMMARY_FILE).stat().st_mtime
        stamps = [(s / SUMMARY_FILE).stat().st_mtime for s in sources if (s / SUMMARY_FILE).is_file()]
        return all(t <= mine for t in stamps)
    return done


def _redo_after(job: Job, after: list[str], train: _Trainer, folder: Path) -> Job:
    """``job`` (an analysis publishing ``folder``) waiting for the jobs ``after`` too, and redone when an SAE
    they publish is newer than its summary."""
    sources = [train.summaries[name] for name in after]
    return dataclasses.replace(job, deps=tuple(dict.fromkeys((*job.deps, *after))),
                               done=_newer_than_sources(folder, sources))


def _all_layers(job: Job) -> Job:
    """A control pair's analysis (``layers=[...]`` of the default) over every layer."""
    layers = "layers=[" + ",".join(str(layer) for layer in LAYERS) + "]"
    if not any(str(a).startswith("layers=") for a in job.command):
        raise ValueError(f"{job.name}: no layers= override to widen")
    command = [layers if str(a).startswith("layers=") else a for a in job.command]
    return dataclasses.replace(job, command=command)

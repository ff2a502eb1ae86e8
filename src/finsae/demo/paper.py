"""The paper study as jobs (``python -m finsae.demo --experiment paper``): bert-base-uncased vs
ProsusAI/finbert, ``experiment=paper`` SAEs on all twelve layers of both models, built like
:func:`finsae.demo.plan.demo_jobs`.

No fine-tune (FinBERT is the twin). SAEs: both models at every layer with a seed-1 repeat, the pair's
crosscoder at seeds 0 and 1, and the two warm starts from the base SAE (on the twin and, as their control, on
the base); then the tweets through each model, analyze, labels, backtest and report, each job skipped when its
stage's ``summary.json`` is published. Where the jobs run is a :class:`Placement`: one-core CPU slots, one GPU
per slot, the SAEs as Lightning DDP over the node's GPUs, or the SAEs through Hydra's submitit launcher on
SLURM (the local runner then only waits on the submitted jobs). The labels job starts and stops its own vLLM
server on loopback when a model folder is given (:mod:`finsae.demo.vllm_labels`), else it runs the offline
label backend.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from finsae.demo.plan import SaeRun, _published, _report_done
from finsae.demo.scheduler import THREAD_VARS, Job
from finsae.errors import FinsaeError
from finsae.models.declared import searchpath_override
from finsae.paths import (PROJECT_ROOT, analysis_dir, backtest_dir, labels_dir, outputs_root, report_dir,
                          sae_dir)
from finsae.trading.config import FeatureConfig

EXPERIMENT, TAG = "paper", "paper"
BASE, TWIN, PAIR = "bert_base", "finbert", "bert_finbert"
CROSSCODER = f"crosscoder_{BASE}_{TWIN}"  # where train.py task=crosscoder publishes the pair's crosscoder
LAYERS = tuple(range(12))
STAGES = ("train", "analyze", "label", "backtest")
"""The Hydra entry points whose overrides a user may add (``--override STAGE:key=value``)."""
OFFLINE_LABELS_NOTE = ("labels: no --vllm-model given: the labels job runs the offline backend "
                       "(label=offline: lexical explainer, embedding scorer); give --vllm-model DIR for "
                       "Qwen2.5-7B-Instruct on vLLM")


@dataclass(frozen=True)
class Placement:
    """Where the jobs run."""

    slots: int = 2
    """Jobs at a time: one CPU core each, or one GPU each when ``gpus`` is set."""
    gpus: int = 0
    """GPUs of this node (0: CPU only); each slot is one GPU (``CUDA_VISIBLE_DEVICES`` per job)."""
    ddp: bool = False
    """The SAE jobs as Lightning DDP over all ``gpus`` (one job at a time holds every GPU)."""
    slurm: tuple[str, ...] | None = None
    """The SAE jobs through ``hydra/launcher=submitit_slurm`` with these launcher overrides (None: local)."""

    def check(self) -> None:
        if self.slots < 1:
            raise FinsaeError(f"--slots {self.slots}: at least one job must run at a time")
        if self.gpus < 0:
            raise FinsaeError(f"--gpus {self.gpus}: give the number of GPUs of this node (0: CPU only)")
        if self.ddp and self.gpus < 2 and self.slurm is None:
            raise FinsaeError("--ddp trains each SAE over the node's GPUs: give --gpus N with N >= 2")

    def sae(self) -> tuple[tuple[str, ...], int]:
        """The trainer overrides of an SAE job and the slots it holds."""
        if self.slurm is not None:  # the cluster's node, one task per GPU (conf/trainer/ddp7.yaml)
            return ("trainer=ddp7",), 1
        if self.ddp:
            return ("trainer=ddp7", f"trainer.devices={self.gpus}"), self.gpus
        return (("trainer=gpu",) if self.gpus else ("trainer=cpu",)), 1

    def where(self, job: Job) -> str:
        """Where ``job`` runs, in words (for ``--dry-run``)."""
        if job.stage == "SAEs" and self.slurm is not None:
            return "SLURM (submitit)"
        if job.stage == "SAEs" and self.ddp:
            return f"DDP x {self.gpus} GPUs"
        unit = "GPU" if self.gpus else "core"
        return f"{job.slots} {unit}" + ("s" if job.slots > 1 else "")


def paper_run(model: str, layer: int, seed: int = 0, tag: str = TAG, **kw) -> SaeRun:
    """One paper SAE: ``train.py experiment=paper model=M layer=L [seed=S tag=T]`` (a warm run continues the
    base SAE of the layer)."""
    return SaeRun(model, layer, seed, tag, start=TAG, experiment=EXPERIMENT, base=BASE, twin=TWIN, **kw)


def paper_runs(layers: tuple[int, ...] = LAYERS) -> list[SaeRun]:
    """Every layer of both models, their seed-1 repeats, the crosscoder at seeds 0 and 1, the warm starts
    (domain and control A at seed 1: same tokens in the same order; the affine-map null; control B at seed 2),
    in the demo's order: each model's first run (its activation cache) first, then the models alternate."""
    runs = []
    for layer in layers:
        runs += [paper_run(BASE, layer), paper_run(TWIN, layer)]
    for layer in layers:
        runs += [paper_run(BASE, layer, 1, f"{TAG}_seed1"), paper_run(TWIN, layer, 1, f"{TAG}_seed1")]
    for layer in layers:
        runs += [paper_run(CROSSCODER, layer), paper_run(CROSSCODER, layer, 1, f"{TAG}_seed1")]
    for layer in layers:
        runs += [paper_run(TWIN, layer, 1, f"{TAG}_warm_domain", warm=True),
                 paper_run(BASE, layer, 1, f"{TAG}_warm_control", warm=True),
                 paper_run(TWIN, layer, 1, f"{TAG}_warm_affine", warm=True, dictionary="affine_null"),
                 paper_run(BASE, layer, 2, f"{TAG}_warm_control_b", warm=True)]
    return runs


@dataclass(frozen=True)
class PaperOptions:
    """What a user chooses beside the placement."""

    layers: tuple[int, ...] = LAYERS
    """Layers of both models (a subset for a quick run; the paper takes all twelve)."""
    overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Extra Hydra overrides per entry point (``train``, ``analyze``, ``label``, ``backtest``), last."""
    vllm_model: str | None = None
    """Qwen2.5-7B-Instruct weights: the labels job serves them with vLLM (loopback), label=qwen."""
    vllm_port: int = 8000
    """The loopback port of that server."""

    def check(self) -> None:
        bad = sorted(set(self.overrides) - set(STAGES))
        if bad:
            raise FinsaeError(f"--override {bad[0]}:...: no such entry point; give one of {list(STAGES)}")
        wrong = [x for x in self.layers if x not in LAYERS]
        if not self.layers or wrong:
            raise FinsaeError(f"--layers {list(self.layers)}: the paper pair has layers 0-11")
        if self.vllm_model is not None and not (Path(self.vllm_model) / "config.json").is_file():
            raise FinsaeError(f"--vllm-model {self.vllm_model}: no config.json there; give the folder of the "
                              f"model's weights (e.g. a snapshot of Qwen/Qwen2.5-7B-Instruct)")


def paper_jobs(artifacts: Path, place: Placement = Placement(), opts: PaperOptions = PaperOptions(),
               python: str = sys.executable, root: Path = PROJECT_ROOT, run_stamp: str = "run",
               results_dir: Path | None = None, readme: Path | None = None) -> list[Job]:
    """The jobs of ``python -m finsae.demo --experiment paper`` (arguments as
    :func:`~finsae.demo.plan.demo_jobs`)."""
    artifacts = Path(artifacts)
    place.check()
    opts.check()
    outputs = outputs_root() / EXPERIMENT / run_stamp
    # a GPU job's host threads: the node's cores shared among the slots
    threads = str(max(1, (os.cpu_count() or 1) // place.slots))
    stage_env = {v: threads for v in THREAD_VARS} if place.gpus else {}
    own_configs = searchpath_override()  # the model and pair files of $FINSAE_CONFIG_DIR, for Hydra too

    def script(name: str, job: str, stage: str, *overrides: str, sweep: tuple[str, ...] = ()) -> list[str]:
        folder = outputs / job.replace(" ", "_")
        where = [f"hydra.sweep.dir={folder}"] if sweep else [f"hydra.run.dir={folder}"]
        return [python, str(root / name), *sweep, f"paths.artifacts={artifacts}", *overrides,
                *opts.overrides.get(stage, ()), *own_configs, *where]

    trainer, sae_slots = place.sae()
    launcher = () if place.slurm is None else ("--multirun", "hydra/launcher=submitit_slurm", *place.slurm)
    runs = paper_runs(opts.layers)
    first: dict[str, str] = {}
    for r in runs:
        first.setdefault(r.model, r.name)
    jobs = [Job(r.name, "SAEs", script("train.py", r.name, "train", *r.overrides(artifacts), *trainer,
                                       sweep=launcher),
                deps=r.deps(first, {}), slots=sae_slots, env=stage_env,
                done=_published(sae_dir(artifacts, r.model, r.layer, r.tag))) for r in runs]
    saes = tuple(r.name for r in runs)
    pair = [f"pair={PAIR}"]
    feature_layers = [x for x in FeatureConfig().layers if x in opts.layers] or [opts.layers[-1]]
    features = [f"features.tag={TAG}", f"features.layers=[{','.join(map(str, feature_layers))}]"]
    backtest_done = _published(backtest_dir(artifacts, PAIR))
    for role, model in (("base", BASE), ("domain", TWIN)):
        deps = tuple(paper_run(model, x).name for x in feature_layers)
        command = script("backtest.py", f"tweets {model}", "backtest", *pair, *features,
                         f"encode_only={role}")
        jobs.append(Job(f"tweets {model}", "tweets", command, deps=deps, env=stage_env, done=backtest_done))
    layers = [f"layers=[{','.join(map(str, opts.layers))}]"] if opts.layers != LAYERS else []
    analyze = script("analyze.py", "analyze", "analyze", *pair, f"tag={TAG}", *layers)
    jobs.append(Job("analyze", "analyze", analyze, deps=saes, slots=min(2, place.slots), env=stage_env,
                    done=_published(analysis_dir(artifacts, PAIR))))
    label = script("label.py", "labels", "label", *pair, "skip_if_done=true", *_label_overrides(opts))
    jobs.append(_labels_job(artifacts, place, opts, label, python, stage_env))
    jobs.append(Job("backtest", "backtest", script("backtest.py", "backtest", "backtest", *pair, *features,
                                                   "skip_if_done=true", "features.encode_jobs=1"),
                    deps=("labels", "tweets bert_base", "tweets finbert"), slots=min(2, place.slots),
                    env={**{v: "1" for v in THREAD_VARS}, **stage_env}, done=backtest_done))
    jobs.append(Job("report", "report", [python, "-m", "finsae.report", "--artifacts", str(artifacts),
                                         "--results", str(results_dir or ""), "--readme", str(readme or "")],
                    deps=("backtest",), done=_report_done(artifacts)))
    return jobs


def _label_overrides(opts: PaperOptions) -> list[str]:
    if opts.vllm_model is None:
        return ["label=offline"]
    return ["label=qwen", f"label.base_url=http://127.0.0.1:{opts.vllm_port}/v1"]


def _labels_job(artifacts: Path, place: Placement, opts: PaperOptions, label_cmd: list[str], python: str,
                stage_env: dict[str, str]) -> Job:
    """The labels job: label.py as is, or wrapped in :mod:`finsae.demo.vllm_labels` (server up, labels, server
    down); with vLLM on GPUs it holds one GPU (the server's)."""
    done = _published(labels_dir(artifacts, PAIR))
    if opts.vllm_model is None:
        return Job("labels", "labels", label_cmd, deps=("analyze",), slots=min(2, place.slots), env=stage_env,
                   done=done)
    served = "Qwen/Qwen2.5-7B-Instruct"  # conf/label/qwen.yaml's label.model: the name the server answers to
    wrapper = [python, "-m", "finsae.demo.vllm_labels", "--model", opts.vllm_model, "--served-name", served,
               "--port", str(opts.vllm_port),
               "--server-log", str(report_dir(artifacts) / "logs" / "vllm_server.log"), "--", *label_cmd]
    return Job("labels", "labels", wrapper, deps=("analyze",), slots=1, env=stage_env, done=done)

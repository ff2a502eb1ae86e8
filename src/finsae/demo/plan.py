"""The offline study as jobs: which entry point each runs, what it waits for, how its output is recognised.

Stages (in progress order): finetune, SAEs, tweets, analyze, labels, backtest, report. Within SAEs, the first job of a
model builds that model's activation cache for all six layers (the cache is locked per entry: a second job of the
same model started beside it would only wait), so the model's other SAE jobs wait for it; minilm's first job
needs no twin and runs beside the fine-tune. The control twins (issue 33: the SST-2 twin and the finance twin at
fine-tune seed 2) get their fine-tunes, SAEs at :data:`CONTROL_LAYERS` and one analysis per control pair there. The done check of a job is its stage's own
(:func:`finsae.summary.is_published`: the ``summary.json`` each stage publishes last), without importing the stages.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

from finsae import precision
from finsae.demo.scheduler import THREAD_VARS, Job
from finsae.paths import (PROJECT_ROOT, analysis_dir, backtest_dir, crosscoder_name, labels_dir, model_dir,
                          model_dirs, outputs_root, pair_dirs, report_dir, sae_dir, sae_dirs)
from finsae.summary import SUMMARY_FILE, is_published
from finsae.trading.config import FeatureConfig

REPORT_PAGE = "index.html"
"""What ``python -m finsae.report`` writes last, after the SAE tables (in :func:`~finsae.paths.report_dir`)."""

BASE, TWIN, PAIR = "minilm", "minilm_fin", "minilm_fin"
CONTROL_PAIRS = {"minilm_sst2": (BASE, "minilm_sst2"),
                 "minilm_fin_seed": (BASE, "minilm_fin_s2")}
"""The control pairs (``conf/pair/{name}.yaml``: base, twin): minilm vs its SST-2 twin (the finance recipe on general
text and sentiment), and minilm vs the finance twin's fine-tune seed 2 (like with like: what a base-vs-twin measure
moves with the fine-tune's seed). Each twin is made by ``+finetune={twin}``."""
CONTROL_LAYERS = (2, 3, 4)
"""Where the control pairs' SAEs and feature methods run in the default demo (issue 33, "Budget and profiles")."""
CROSSCODER = f"crosscoder_{BASE}_{TWIN}"  # where train.py task=crosscoder publishes the pair's crosscoder
LAYERS = (0, 1, 2, 3, 4, 5)
SEED_LAYERS = LAYERS  # seed repeats at every layer: the analysis' seed ceilings and floor need both seeds everywhere
THIRD_SEED_LAYERS = (2, 3, 4)
"""Where every SAE, crosscoder and warm-start run has three seeds (issue 33 §3: at least L2-L4, where the
activation lens shows the change beginning): seed 2 (``demo_seed2``) of both models' SAEs and of the
crosscoder, and the warm starts repeated from base seeds 1 and 2 (:func:`warm_repeat`)."""
LAYER_SAE = {5: ("sae.lr=0.002", "sae.k=96")}
"""Per-layer SAE settings of the demo, chosen on the SAE-eval documents of the training period (docs/demo.md,
"Layer 5"): at the default peak lr (4e-3) the twin's layer-5 SAE ends with 6.1% dead latents, at 2e-3 with none;
at k = 32 the base model's last layer stays at FVU 0.28-0.29 (k = 64: 0.22), at k = 96 it is 0.165 (the twin 0.048),
no latent dead (batch 512; at the demo's batch of 1,024, 0.185). Both models and the warm starts of that layer take
it, so base and twin SAEs stay trained alike."""
CROSSCODER_LAYER = {5: ("sae.k=64",)}
"""Per-layer settings of the pair's crosscoder, chosen alike (docs/demo.md, "Layer 5"): at k = 32 its layer-5 FVU is
0.22 (1.04% dead at seed 0), at k = 64 0.1705 with no latent dead (batch 512)."""


@dataclass(frozen=True)
class SaeRun:
    """One SAE of a study's plan: ``python train.py experiment=E model=M layer=L [seed=S tag=T]``; ``model`` =
    the pair's crosscoder is ``task=crosscoder`` on the pair; ``warm`` continues the base SAE of the layer
    (``sae.init_from``). The demo's runs take the defaults; the paper study's name its experiment and pair
    (:func:`finsae.demo.paper.paper_run`)."""

    model: str
    layer: int
    seed: int = 0
    tag: str = "demo"
    warm: bool = False
    start: str = "demo"
    """Tag of the base SAE a warm run continues."""
    dictionary: str = ""
    """``sae.dictionary`` when not the default (``affine_null``: the warm start's affine-map null run)."""
    experiment: str = "demo"
    """``experiment=`` of train.py; its SAEs' own tag is the experiment's name (another run names its tag)."""
    base: str = BASE
    twin: str = TWIN
    pair: str = ""
    """``pair=`` of a crosscoder run on another pair than the experiment's (a control pair)."""
    settings: tuple[str, ...] = ()
    """This run's own overrides (the demo's per-layer ones: :data:`LAYER_SAE`, :data:`CROSSCODER_LAYER`)."""

    @property
    def crosscoder(self) -> bool:
        return self.model == crosscoder_name(self.base, self.twin)

    @property
    def name(self) -> str:
        return f"sae {self.model} L{self.layer}" + ("" if self.tag == self.experiment else f" {self.tag}")

    def overrides(self, artifacts: Path) -> list[str]:
        what = ["task=crosscoder"] if self.crosscoder else [f"model={self.model}"]
        what += [f"pair={self.pair}"] if self.pair else []
        extra = [] if self.tag == self.experiment else [f"seed={self.seed}", f"tag={self.tag}"]
        if self.warm:
            extra.append(f"sae.init_from={sae_dir(artifacts, self.base, self.layer, self.start)}")
        if self.dictionary:
            extra.append(f"sae.dictionary={self.dictionary}")
        # resume=true: a rerun of a stopped study continues the run's checkpoint (without it the run refuses
        # to clobber that checkpoint); with none it trains from the start
        return [f"experiment={self.experiment}", *what, f"layer={self.layer}", *extra, *self.settings,
                "skip_if_done=true", "resume=true"]

    def deps(self, first: dict[str, str], before_first: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
        """The jobs this run waits for: a model's first run (``first``: model -> run name) builds its
        activation cache, so its other runs and the crosscoder wait for it; the first waits for
        ``before_first`` of its model (the fine-tune that makes a twin); a warm run for the base SAE it
        continues."""
        if self.crosscoder:
            deps = (first[self.base], first[self.twin])
        elif self.name == first[self.model]:
            deps = before_first.get(self.model, ())
        else:
            deps = (first[self.model],)
        if self.warm:
            deps = (*deps, replace(self, model=self.base, tag=self.start, warm=False).name)
        return tuple(dict.fromkeys(deps))


def with_layer_settings(runs: list[SaeRun]) -> list[SaeRun]:
    """The demo's runs with their layer's settings (:data:`CROSSCODER_LAYER` for the crosscoder, else
    :data:`LAYER_SAE`)."""
    return [replace(r, settings=(CROSSCODER_LAYER if r.crosscoder else LAYER_SAE).get(r.layer, ()))
            for r in runs]


def finetune_precision() -> tuple[str, ...]:
    """The fine-tune's precision override: ``bf16-mixed`` where the CPU has bf16 units (the compute dtype
    :func:`finsae.precision.resolve` picks), else none (fp32). Measured on the twin's recipe (docs/demo.md,
    "Levers"): 543 s instead of 808 s, PhraseBank accuracy 0.816 / macro-F1 0.789 against fp32's 0.812 / 0.783."""
    return ("trainer.precision=bf16-mixed",) if precision.resolve("auto", "cpu") == "bf16" else ()


def finetune_job(twin: str) -> str:
    """The name of the job that makes ``twin`` (``python train.py task=finetune +finetune={twin}``)."""
    return "finetune" if twin == TWIN else f"finetune {twin}"


def control_twins() -> list[str]:
    """The control twins, each once, in :data:`CONTROL_PAIRS` order."""
    return list(dict.fromkeys(twin for _, twin in CONTROL_PAIRS.values()))


def control_sae_runs() -> list[SaeRun]:
    """The control twins' SAEs: seed 0, the demo's settings, at :data:`CONTROL_LAYERS` only (their pairs' other
    model has its SAEs among :func:`sae_runs`)."""
    return with_layer_settings([SaeRun(twin, layer) for twin in control_twins() for layer in CONTROL_LAYERS])


def warm_repeat(layer: int, seed: int) -> list[SaeRun]:
    """The warm starts of base seed ``seed`` at ``layer``: its SAE (tag ``demo`` or ``demo_seed{seed}``)
    continued on the twin (``{start}_warm_domain``) and, as their control, on the base model itself
    (``{start}_warm_control``), both at training seed ``seed + 1`` so they see the same tokens in the same
    order. The analysis finds the repeats by the seed tag
    (``analysis.methods.base.DiffingMethod.seed_inputs``)."""
    start = "demo" if seed == 0 else f"demo_seed{seed}"
    return [SaeRun(TWIN, layer, seed + 1, f"{start}_warm_domain", warm=True, start=start),
            SaeRun(BASE, layer, seed + 1, f"{start}_warm_control", warm=True, start=start)]


def sae_runs() -> list[SaeRun]:
    """What ``make saes`` trains: every layer of both models with seed repeats (seed 1 everywhere, seed 2 at
    :data:`THIRD_SEED_LAYERS`); the pair's crosscoder alike (seeds 0, 1; seed 2 there); the warm starts from
    the base SAE (:func:`warm_repeat`; repeated from base seeds 1 and 2 there). Each model's first run comes
    first; then the two models alternate, so the two cores train one SAE of each."""
    runs = []
    for layer in LAYERS:
        runs += [SaeRun(BASE, layer), SaeRun(TWIN, layer)]
    for layer in SEED_LAYERS:
        runs += [SaeRun(BASE, layer, 1, "demo_seed1"), SaeRun(TWIN, layer, 1, "demo_seed1")]
    for layer in THIRD_SEED_LAYERS:
        runs += [SaeRun(BASE, layer, 2, "demo_seed2"), SaeRun(TWIN, layer, 2, "demo_seed2")]
    for layer in LAYERS:
        runs += [SaeRun(CROSSCODER, layer), SaeRun(CROSSCODER, layer, 1, "demo_seed1")]
    runs += [SaeRun(CROSSCODER, layer, 2, "demo_seed2") for layer in THIRD_SEED_LAYERS]
    for layer in LAYERS:
        runs += warm_repeat(layer, 0)
    for seed in (1, 2):
        for layer in THIRD_SEED_LAYERS:
            runs += warm_repeat(layer, seed)
    runs += [run for layer in THIRD_SEED_LAYERS for run in warm_nulls(layer)]
    return with_layer_settings(runs)


def warm_nulls(layer: int) -> list[SaeRun]:
    """The warm start's two nulls at ``layer`` (issue 33 §5): the base SAE continued on the twin's affine image
    of the base (``demo_warm_affine``, ``sae.dictionary=affine_null``: a latent is changed by fine-tuning only
    beyond this run's drift) and a second control on the base model at another training seed
    (``demo_warm_control_b``: the false-positive rate out of sample, against control A's threshold)."""
    return [SaeRun(TWIN, layer, 1, "demo_warm_affine", warm=True, dictionary="affine_null"),
            SaeRun(BASE, layer, 2, "demo_warm_control_b", warm=True)]


def _published(folder: Path):
    """The stage's own done check on ``folder`` (:func:`finsae.summary.is_published`), deferred."""
    return lambda: is_published(folder)


def report_file(artifacts: Path) -> Path:
    """The file that marks the report (page and SAE tables) as written."""
    return report_dir(artifacts) / REPORT_PAGE


def _report_done(artifacts: Path):
    """The report is done when it is newer than every summary it is made from."""
    def done() -> bool:
        out = report_file(artifacts)
        if not out.is_file():
            return False
        folders = [*sae_dirs(artifacts), *model_dirs(artifacts),
                   *(d for stage in ("analysis", "labels", "backtest") for d in pair_dirs(artifacts, stage))]
        sources = [d / SUMMARY_FILE for d in folders if (d / SUMMARY_FILE).is_file()]
        return all(s.stat().st_mtime <= out.stat().st_mtime for s in sources)
    return done


def demo_jobs(artifacts: Path, python: str = sys.executable, root: Path = PROJECT_ROOT,
              run_stamp: str = "run", results_dir: Path | None = None, readme: Path | None = None) -> list[Job]:
    """The jobs of ``make demo``. ``run_stamp`` names this run's Hydra folders (two jobs started in the same
    second would otherwise share Hydra's time-stamped folder); the report job writes the results pages into
    ``results_dir`` and README's headline into ``readme`` (neither when None)."""
    artifacts = Path(artifacts)
    outputs = outputs_root() / "demo" / run_stamp

    def script(name: str, job: str, *overrides: str) -> list[str]:
        folder = outputs / job.replace(" ", "_")
        # the store the done checks look in: every job writes there (not the default store)
        return [python, str(root / name), *overrides, f"paths.artifacts={artifacts}", f"hydra.run.dir={folder}"]

    def finetune(twin: str) -> Job:
        name = finetune_job(twin)
        overrides = ["task=finetune", f"+finetune={twin}", "finetune.skip_if_present=true", "resume=true",
                     *finetune_precision()]
        return Job(name, "finetune", script("train.py", name, *overrides), done=_published(model_dir(artifacts, twin)))

    jobs = [finetune(TWIN)]
    runs, controls = sae_runs(), control_sae_runs()
    first = {}
    for r in runs + controls:
        first.setdefault(r.model, r.name)

    twins = {r.model: (finetune_job(r.model),) for r in runs + controls
             if r.model != BASE and not r.crosscoder}

    def sae_job(r: SaeRun) -> Job:
        return Job(r.name, "SAEs", script("train.py", r.name, *r.overrides(artifacts)),
                   deps=r.deps(first, twins), done=_published(sae_dir(artifacts, r.model, r.layer, r.tag)))

    jobs += [sae_job(r) for r in runs]
    saes = tuple(r.name for r in runs)
    # the tweets through each model and its SAEs at the backtest's layers, one core each, instead of inside the
    # backtest (which then reads the caches). In order of preference they come right after the layer SAEs of both
    # models: they start once their layer-3 SAEs exist, and the shorter SAE jobs after them fill the cores at the
    # stage's end (placed last, the twin's longer encoding left one core idle for ~3.5 min before the analysis)
    backtest_done = _published(backtest_dir(artifacts, PAIR))
    features = FeatureConfig()
    tweets = []
    for role, model in (("base", BASE), ("domain", TWIN)):
        deps = tuple(SaeRun(model, layer).name for layer in features.layers)
        if model == TWIN:
            deps = ("finetune", *deps)
        tweets.append(Job(f"tweets {model}", "tweets", script("backtest.py", f"tweets {model}", f"encode_only={role}"),
                          deps=deps, done=backtest_done))
    last_layer_sae = [r.name for r in runs if r.tag == "demo" and not r.crosscoder][-1]
    at = [j.name for j in jobs].index(last_layer_sae) + 1
    # the control fine-tunes (~9 min each, one core) right after the tweets: long jobs early, while the short SAE
    # jobs are left to fill the cores; their SAEs after the study's own
    jobs[at:at] = [*tweets, *(finetune(twin) for twin in control_twins())]
    jobs += [sae_job(r) for r in controls]
    # the control pairs' analyses first, side by side (one core each), then the finance pair's in two
    # one-thread workers of its own: the last to end writes comparison.md with all three pairs' lenses, and
    # the finance pair's findings.md compares them
    controls_analyzed = _control_analyses(artifacts, runs + controls, script)
    jobs += controls_analyzed
    jobs.append(Job("analyze", "analyze", script("analyze.py", "analyze"), slots=2,
                    deps=(*saes, *(j.name for j in controls_analyzed)),
                    done=_published(analysis_dir(artifacts, PAIR))))
    # nothing runs beside the labels (the backtest waits for them): both cores for its sentence embeddings (2x)
    jobs.append(Job("labels", "labels", script("label.py", "labels", "skip_if_done=true"), deps=("analyze",), slots=2,
                    done=_published(labels_dir(artifacts, PAIR))))
    # the backtest merges the labels into its importance table when they exist: after labels, not beside them; it runs its
    # walk-forward fits in one-thread workers of its own (two cores) and reads the tweet encodings the tweets jobs cached,
    # in its own process (encode_jobs=1): two workers only to read warm caches took 14-17 s instead of 6 s
    jobs.append(Job("backtest", "backtest", script("backtest.py", "backtest", "skip_if_done=true", "features.encode_jobs=1"),
                    deps=("labels", *(j.name for j in tweets)), slots=2, env={v: "1" for v in THREAD_VARS},
                    done=backtest_done))
    jobs.append(_claim_backtest(artifacts, script))
    jobs.append(Job("report", "report", [python, "-m", "finsae.report", "--artifacts", str(artifacts),
                                         "--results", str(results_dir or ""), "--readme", str(readme or "")],
                    deps=("backtest", "backtest claim", *(j.name for j in controls_analyzed)),
                    done=_report_done(artifacts)))
    return jobs


def _control_analyses(artifacts: Path, runs: list[SaeRun], script) -> list[Job]:
    """``analyze.py pair=P layers=[CONTROL_LAYERS]`` per control pair, in one process each (``analysis.jobs=1``):
    before the main analysis the two run side by side, one core each. Each waits for every SAE of its two
    models at those layers (seed repeats and warm starts included: what the analysis finds there must not depend on
    timing)."""
    layers = "[" + ",".join(str(layer) for layer in CONTROL_LAYERS) + "]"
    jobs = []
    for pair, models in CONTROL_PAIRS.items():
        name = f"analyze {pair}"
        deps = tuple(r.name for r in runs if r.model in models and r.layer in CONTROL_LAYERS)
        jobs.append(Job(name, "analyze", script("analyze.py", name, f"pair={pair}", f"layers={layers}",
                                                "analysis.jobs=1"),
                        deps=deps, done=_published(analysis_dir(artifacts, pair))))
    return jobs


def _claim_backtest(artifacts: Path, script) -> Job:
    """The seed's claim (latents fine-tuning changed vs unchanged vs random vs the twin's sentiment) in a
    folder of its own, walk-forward only: it reads the tweet caches and the analysis and shares the trial
    ledger (its trials deflate every DSR)."""
    claim = f"{PAIR}_claim"
    command = script("backtest.py", "backtest claim", "features=claim", f"folder_name={claim}",
                     "benchmark.protocols=[walk_forward]", "canaries=false", "skip_if_done=true",
                     "features.encode_jobs=1")
    return Job("backtest claim", "backtest", command, deps=("backtest",), slots=2,
               env={v: "1" for v in THREAD_VARS}, done=_published(backtest_dir(artifacts, claim)))

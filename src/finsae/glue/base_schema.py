"""The fields every script's config shares (paths, the pair, the logger, the run name) and the groups they are
made of; each script's schema (train: :mod:`finsae.glue.schemas`, analyze, label, backtest: their
``*_schema`` modules) derives from :class:`ScriptSchema` and adds its own groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from omegaconf import MISSING, OmegaConf

from finsae.data.corpus import EVAL_START
from finsae.errors import ConfigError, require
from finsae.models.registry import known_models
from finsae.paths import plain_name

_check = require


@dataclass
class PathsSchema:
    data_dir: str = MISSING
    """Real data (values: conf/paths/default.yaml, the only place directories are decided)."""
    artifacts: str = MISSING
    """Stable store read by later stages (models, activations, SAEs, ...)."""
    output_dir: str = MISSING
    """This run's own folder (Hydra's outputs/...)."""


@dataclass
class ModelSchema:
    name: str = MISSING
    """One of bert_base, finbert, minilm, minilm_fin, tiny, or a model of a conf/model file with ``path``."""
    path: str | None = None
    """Local folder with config.json to load instead of the default source."""
    seed: int = 0
    """tiny only: init seed."""

    def __post_init__(self):
        known = known_models()  # built-in and declared by conf/model files
        _check(self.name in known, f"model.name={self.name!r} is unknown; choose one of {known}")


@dataclass
class PairSchema:
    base: str = MISSING
    """The general model (bert_base, minilm)."""
    domain: str = MISSING
    """Its finance-tuned twin (finbert, minilm_fin)."""

    def __post_init__(self):
        known = known_models()  # built-in and declared by conf/model files
        for v in (self.base, self.domain):
            _check(v in known, f"pair member {v!r} is unknown; choose from {known} (or declare it: "
                               f"conf/model/{v}.yaml with name: and path:)")


def pair_name(cfg) -> str:
    """The folder name of a pair's stage outputs: ``cfg.pair_name`` when set, else the ``pair=`` option chosen
    (``minilm_fin``) unless its members were overridden, else ``{base}_{domain}``."""
    if getattr(cfg, "pair_name", None) is not None:
        return plain_name(cfg.pair_name, "pair_name")
    from hydra.core.hydra_config import HydraConfig

    from finsae.models.declared import config_dirs

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("pair")
        # conf/pair, else $FINSAE_CONFIG_DIR/pair (Hydra's order)
        found = [d / "pair" / f"{choice}.yaml" for d in config_dirs()]
        option = next((f for f in found if f.is_file()), None)
        if choice and option is not None:
            o = OmegaConf.load(option)
            if (o.get("base"), o.get("domain")) == (cfg.pair.base, cfg.pair.domain):
                return str(choice)
    return f"{cfg.pair.base}_{cfg.pair.domain}"


@dataclass
class DataSchema:
    corpora: list[str] = field(default_factory=lambda: ["financial", "general"])
    """Named corpora (finsae.data.corpus.list_corpora()) whose train split feeds the SAE."""
    max_docs: int | None = None
    """Per corpus, a deterministic subset (None: all)."""
    max_chars_per_corpus: int | None = 2_600_000
    """Per corpus, a text budget in characters (about 600k tokens each at the default); None: all."""
    eval_start: str = EVAL_START
    """First day of the evaluation period: no text dated on/after it trains or selects anything."""
    sae_eval_frac: float = 0.05
    """Documents of the training corpus set aside (by a hash of the doc id) to score the SAE on."""

    def __post_init__(self):
        _check(len(self.corpora) > 0, "data.corpora must name at least one corpus")
        _check(0 < self.sae_eval_frac < 0.5, "data.sae_eval_frac must be in (0, 0.5)")
        try:
            date.fromisoformat(str(self.eval_start))
        except ValueError:
            raise ConfigError(f"data.eval_start={self.eval_start!r} is not a date (YYYY-MM-DD)") from None


@dataclass
class LoggerSchema:
    kind: str = "wandb"
    """wandb, csv or none."""
    mode: str = "offline"
    """wandb mode: offline (default, under the run dir) or online (needs WANDB_API_KEY in the environment)."""
    project: str = "finsae"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)

    def __post_init__(self):
        _check(self.kind in ("wandb", "csv", "none"), f"logger.kind must be wandb, csv or none, got {self.kind!r}")
        _check(self.mode in ("offline", "online", "disabled"), f"logger.mode must be offline or online, got {self.mode!r}")


@dataclass
class ScriptSchema:
    """What every script's config holds: where things go, the pair its study belongs to, the logger, the name
    of its run folders."""

    paths: PathsSchema = MISSING
    pair: PairSchema = MISSING
    logger: LoggerSchema = field(default_factory=LoggerSchema)
    name: str = MISSING
    """Names the run folders (each script sets its own)."""


@dataclass
class PairStageSchema(ScriptSchema):
    """A stage that reads a pair's outputs (analyze, label, backtest)."""

    pair_name: str | None = None
    """Names artifacts/{stage}/{pair_name}/ (None: the ``pair=`` option chosen, else ``{base}_{domain}``)."""
    progress_bar: bool = True
    """Progress bars with ETAs."""

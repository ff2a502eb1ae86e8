"""Typed Hydra schemas: every config group is a dataclass registered in the ConfigStore.

A YAML file in ``conf/<group>/`` extends its group's schema (``defaults: [_schema]``), so a typo'd
key fails at composition ("Key 'kk' not in 'SaeTrainConfig'"), and ``validate(cfg)`` turns the composed
config into these dataclasses, running each ``__post_init__`` range check before any work starts.

Where a group configures science, its schema *is* the core dataclass, so each knob is declared once, with its
default and doc: ``sae`` = :class:`finsae.sae.SaeTrainConfig`, ``activations`` =
:class:`finsae.activations.ExtractConfig`, ``finetune`` = :class:`finsae.finetune.config.FinetuneConfig`. The
framework groups (trainer, logger, paths) live here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from finsae.activations.config import ExtractConfig
from finsae.glue import analyze_schema, backtest_schema, label_schema
from finsae.glue.base_schema import DataSchema, LoggerSchema, ModelSchema, PairSchema, PathsSchema, ScriptSchema
from finsae.errors import ConfigError, require
from finsae.finetune.config import FinetuneConfig
from finsae.redaction import credentials_message, is_secret_name, url_credentials
from finsae.paths import default_artifacts_dir, default_data_dir, plain_name
from finsae.sae.config import SaeTrainConfig


ACCELERATORS = ("cpu", "gpu", "cuda", "auto")
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")


_check = require


@dataclass
class TrainerSchema:
    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    """auto, ddp, ddp_spawn (CPU tests), ..."""
    precision: str = "32-true"
    checkpoint_every: int = 50
    """Optimizer steps between checkpoints."""
    val_checks: int = 5
    """Validation passes over the ``sae_eval`` split during an SAE fit (W&B's ``val/*`` curves); 0 for none: the
    published FVU is computed on every ``sae_eval`` token after the fit either way."""
    progress_bar: bool = True

    def __post_init__(self):
        _check(self.devices >= 1 and self.num_nodes >= 1, "trainer.devices and trainer.num_nodes must be >= 1")
        _check(self.accelerator in ACCELERATORS, f"trainer.accelerator must be one of {ACCELERATORS}, got {self.accelerator!r}")
        _check(self.precision in PRECISIONS, f"trainer.precision must be one of {PRECISIONS}, got {self.precision!r}")
        _check(self.checkpoint_every >= 1, f"trainer.checkpoint_every must be >= 1, got {self.checkpoint_every}")
        _check(self.val_checks >= 0, f"trainer.val_checks must be >= 0, got {self.val_checks}")


def check_hardware(t: TrainerSchema) -> None:
    """Refuse, before any work, a trainer this machine cannot run (a config may be valid elsewhere)."""
    import torch

    if t.accelerator in ("gpu", "cuda"):
        have = torch.cuda.device_count()
        _check(have > 0, f"trainer.accelerator={t.accelerator} but no CUDA GPU is visible on this machine; use "
                         f"trainer=cpu, or trainer=ddp_sim for DDP on CPU")
        _check(t.devices <= have, f"trainer.devices={t.devices} but this machine has {have} GPU(s)")


TASKS = ("sae", "crosscoder", "finetune")


@dataclass
class TrainScriptSchema(ScriptSchema):
    """`python train.py`: task=sae trains one SAE; task=crosscoder one crosscoder on the pair's two models;
    task=finetune makes the finance twin."""

    model: ModelSchema = MISSING
    pair: PairSchema = MISSING
    """Recorded only for task=sae, as ``experiment=`` sets it (the study a run belongs to): train.py trains
    ``model``, one model at a time, so a ``pair=`` override is refused (``NOT_READ``); task=crosscoder reads it
    (its two models), as analyze/label/backtest do."""
    sae: SaeTrainConfig = field(default_factory=SaeTrainConfig)
    data: DataSchema = field(default_factory=DataSchema)
    activations: ExtractConfig = field(default_factory=ExtractConfig)
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    task: str = "sae"
    layer: int = 3
    """Layer index: -1 = embeddings, i = output of block i (a plain int, not a group)."""
    tag: str = "default"
    """Names the SAE under artifacts/sae/{model}/layer_{i}/{tag}/."""
    seed: int = 0
    resume: bool = False
    """Continue from the last checkpoint of this (model, layer, tag) under artifacts/checkpoints/."""
    overwrite: bool = False
    """Train anew over a finished SAE or an unfinished run's checkpoints (the old SAE is replaced only once the
    new one is complete)."""
    skip_if_done: bool = False
    """Return the stored summary when this SAE's artifact is complete (make demo)."""
    rescore: bool = False
    """Recompute the downstream (loss-recovered) score of this finished SAE and update its summary.json; no
    training. For SAEs scored by older code."""
    rebuild_cache: bool = False
    """Rebuild the activation cache even when a valid one exists."""
    verify_cache: bool = False
    """Re-hash every shard of the reused activation cache before training (catches bytes flipped after the
    first check)."""
    downstream_docs: int = 64
    """PhraseBank test-split sentences (never trained on) for the loss-recovered score."""
    name: str = "train"

    def dictionary(self) -> str:
        """The kind of dictionary this SAE run trains (:func:`finsae.sae.inputs.kind_name`: the one place it
        is chosen from the config)."""
        from finsae.sae.inputs import kind_name

        return kind_name(self.task, self.sae)

    @property
    def NOT_READ(self) -> dict[str, str]:  # noqa: N802 - the name every script schema uses
        """Config keys this run does not read: overriding one is refused (see ``refuse_overrides_not_read``)."""
        from finsae.sae.inputs import KINDS

        if self.task != "finetune" and KINDS[self.dictionary()].reads_pair:
            return {"model": "task=crosscoder trains on both models of pair= (pair.base, pair.domain), not model="}
        return {"pair": "train.py trains one model at a time: choose it with model= (e.g. model=minilm_fin); "
                        "pair= is read by task=crosscoder, analyze.py, label.py and backtest.py"}

    def __post_init__(self):
        _check(self.task in TASKS, f"task must be one of {list(TASKS)}, got {self.task!r}")
        plain_name(self.tag, "tag")
        if self.task != "finetune":
            self.dictionary()  # a kind that does not fit the task or lacks sae.init_from fails at composition

    def stage_module(self) -> str:
        """The module whose ``precheck``/``run`` this config's task runs (what train.py dispatches to)."""
        return "finsae.glue.finetune_stage" if self.task == "finetune" else "finsae.glue.sae_stage"


def register_schemas() -> None:
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainScriptSchema)
    for group, node in [
        ("model", ModelSchema), ("pair", PairSchema), ("sae", SaeTrainConfig), ("data", DataSchema),
        ("activations", ExtractConfig),
        ("trainer", TrainerSchema), ("logger", LoggerSchema), ("paths", PathsSchema),
    ]:
        cs.store(group=group, name="_schema", node=node)
    for stage in (analyze_schema, label_schema, backtest_schema):
        stage.register(cs)
    register_resolvers()


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("finsae_data_dir"):
        OmegaConf.register_new_resolver("finsae_data_dir", lambda: str(default_data_dir()))
    if not OmegaConf.has_resolver("finsae_artifacts"):
        OmegaConf.register_new_resolver("finsae_artifacts", lambda: str(default_artifacts_dir()))


def secret_refusal(key: str) -> ConfigError:
    var = key.rsplit(".", 1)[-1].upper()
    return ConfigError(f"{key} looks like a secret: secrets come from the environment only, never the command line "
                       f"or a config file (set {var} in the environment)")


def refuse_secret_overrides(argv: list[str]) -> None:
    """Refuse ``key=value`` command-line overrides whose key looks like a secret, or whose value is a URL with
    credentials, before Hydra writes any of them to .hydra/*.yaml or W&B records the command line."""
    for arg in argv:
        key = arg.split("=", 1)[0].lstrip("+~") if "=" in arg else ""
        if key and is_secret_name(key):
            raise secret_refusal(key)
        value = arg.split("=", 1)[1] if key else ""
        where = url_credentials(value) if "://" in value else None
        if where:
            raise ConfigError(credentials_message(key, where, "keys come from the environment (e.g. "
                                                              "label.api_key_env)"))


def override_key(arg: str) -> str:
    """The config key of a command-line override (``+a.b=1`` -> ``a.b``, ``~a`` -> ``a``, ``a@pkg=x`` -> ``a``)."""
    return arg.split("=", 1)[0].lstrip("+~").split("@", 1)[0]


def refuse_overrides_not_read(typed: Any, overrides: list[str]) -> None:
    """Refuse an override of a key the script's schema marks as not read (its ``NOT_READ``), instead of
    accepting and ignoring it."""
    for arg in overrides:
        key = override_key(arg)
        for name, why in getattr(typed, "NOT_READ", {}).items():
            if key == name or key.startswith(name + "."):
                raise ConfigError(f"{arg} is not read by {getattr(typed, 'name', 'this script')}.py: {why}")


def unknown_keys(node: DictConfig, obj: Any, prefix: str = "") -> list[str]:
    """Keys of ``node`` that its schema ``obj`` does not declare (Hydra's ``+key=`` adds them silently)."""
    names = {f.name for f in dataclasses.fields(obj)}
    out = []
    for key in node.keys():
        path = f"{prefix}{key}"
        child = node._get_node(key)
        if key not in names:
            out.append(path)
        elif isinstance(child, DictConfig) and dataclasses.is_dataclass(getattr(obj, key)):
            out += unknown_keys(child, getattr(obj, key), path + ".")
    return out


def validate(cfg: DictConfig) -> Any:
    """Composed config -> typed dataclasses (runs every __post_init__); ConfigError on a bad value or a key no
    schema declares."""
    try:
        typed = OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except Exception as e:  # omegaconf wraps errors raised inside __post_init__
        cause = e
        while cause.__cause__ is not None or cause.__context__ is not None:
            nxt = cause.__cause__ or cause.__context__
            if isinstance(nxt, ConfigError):
                raise nxt from None
            cause = nxt
        raise ConfigError(f"invalid config: {str(e).splitlines()[0]}") from None
    extra = unknown_keys(cfg, typed) if dataclasses.is_dataclass(typed) else []
    for key in extra:
        if is_secret_name(key):
            raise secret_refusal(key)
    if extra:
        raise ConfigError(f"unknown config key(s) {extra}: not in the schema (a typo, or a `+key=` Hydra added); "
                          f"`python {cfg.get('name', 'train')}.py --cfg job` lists the keys")
    return typed

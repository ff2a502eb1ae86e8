"""Entry points whose stage is planned but not built yet exit with one clear line instead of pretending."""

from __future__ import annotations

from finsae.errors import FinsaeError

PLANNED = {
}


def refuse(stage: str) -> None:
    raise FinsaeError(
        f"the {stage} stage ({PLANNED[stage]}) is not built yet; it lands with its own issue. "
        f"What exists today: `python train.py task=finetune` and `python train.py model=... layer=...`."
    )


def hydra_entry(stage: str):
    """The Hydra main of a planned stage's entry point (``conf/{stage}.yaml``): validates, then refuses."""
    import hydra

    from finsae.glue.app import run_stage
    from finsae.glue.schemas import register_schemas
    from finsae.paths import PROJECT_ROOT

    register_schemas()

    def _run(cfg, raw):
        refuse(stage)

    @hydra.main(version_base="1.3", config_path=str(PROJECT_ROOT / "conf"), config_name=stage)
    def main(cfg):
        return run_stage(cfg, _run)

    return main

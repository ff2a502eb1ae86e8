"""`python backtest.py`: thin Hydra entry point of the backtest stage (planned; exits with a clear message today)."""

import hydra

from finsae.glue.app import run_stage
from finsae.glue.schemas import register_schemas

register_schemas()


def _run(cfg, raw):
    from finsae.glue.pending import refuse

    refuse("backtest")


@hydra.main(version_base="1.3", config_path="conf", config_name="backtest")
def main(cfg):
    return run_stage(cfg, _run)


if __name__ == "__main__":
    main()

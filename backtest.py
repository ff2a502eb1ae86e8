"""Walk-forward LightGBM on price + SAE text features, the StockNet benchmark, and a backtest after costs.

    python backtest.py                                   # offline default pair, all of it
    python backtest.py benchmark=stocknet                # the published ACL18 protocol only
    python backtest.py features.layers=[3,5] strategy.cost_bps=5
"""

import hydra

from finsae.glue.app import cli, run_stage
from finsae.glue.schemas import register_schemas

register_schemas()


@hydra.main(version_base="1.3", config_path="conf", config_name="backtest")
def main(cfg):
    return run_stage(cfg, "finsae.glue.backtest_stage")


if __name__ == "__main__":
    cli(main)

"""Compare the SAE features of a base model and its finance twin, layer by layer.

    python analyze.py                                   # offline default pair minilm_fin, every layer with SAEs
    python analyze.py pair=bert_finbert layers=[0,6,11]
    python analyze.py --multirun layer=0,1,2,3,4,5      # one job per layer; the tables combine
"""

import hydra

from finsae.glue.app import cli, run_stage
from finsae.glue.schemas import register_schemas

register_schemas()


@hydra.main(version_base="1.3", config_path="conf", config_name="analyze")
def main(cfg):
    return run_stage(cfg, "finsae.glue.analyze_stage")


if __name__ == "__main__":
    cli(main)

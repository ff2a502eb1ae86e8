"""Train an SAE on one layer of one model, or fine-tune the finance twin.

    python train.py model=minilm layer=3                     # one SAE (offline default)
    python train.py --multirun model=minilm,minilm_fin layer=0,1,2,3,4,5
    python train.py model=finbert layer=6 sae.expansion_factor=32 sae.k=192
    python train.py task=crosscoder experiment=demo layer=3  # one crosscoder on the pair's two models
    python train.py experiment=demo model=minilm_fin layer=3 seed=1 tag=demo_warm \
        sae.init_from=artifacts/sae/minilm/layer_3/demo      # warm start from the trained base SAE (its
                                                             # norm_scale, b_dec refitted)
    python train.py experiment=demo model=minilm layer=3 seed=2 tag=demo_warm_control_b \
        sae.init_from=artifacts/sae/minilm/layer_3/demo      # a second control seed (another data order)
    python train.py experiment=demo model=minilm_fin layer=3 seed=1 tag=demo_warm_affine \
        sae.dictionary=affine_null sae.init_from=artifacts/sae/minilm/layer_3/demo  # the warm start's null
    python train.py task=finetune                            # makes artifacts/models/minilm_fin
"""

import hydra

from finsae.glue.app import cli, run_stage
from finsae.glue.schemas import register_schemas

register_schemas()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg):
    stage = "finsae.glue.finetune_stage" if cfg.task == "finetune" else "finsae.glue.sae_stage"
    return run_stage(cfg, stage)


if __name__ == "__main__":
    cli(main)

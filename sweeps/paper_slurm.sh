#!/usr/bin/env bash
# The paper setup on a SLURM cluster: bert-base-uncased vs ProsusAI/finbert, 24,576 latents, k=192, every layer,
# one node x 7 GPUs per SAE. Needs `pip install -e '.[cluster]'` (hydra-submitit-launcher) and the two models in
# the HF cache (or model.path=...). submitit starts one task per GPU and Lightning's DDP joins them.
set -euo pipefail
cd "$(dirname "$0")/.."
python train.py --multirun experiment=paper model=bert_base,finbert layer=0,1,2,3,4,5,6,7,8,9,10,11 \
  hydra/launcher=submitit_slurm hydra.launcher.nodes=1 hydra.launcher.tasks_per_node=7 \
  hydra.launcher.gpus_per_node=7 hydra.launcher.cpus_per_task=8 hydra.launcher.timeout_min=720 "$@"

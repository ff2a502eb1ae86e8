#!/usr/bin/env bash
# Learning-rate sweep at the demo budget (MiniLM layer 3, 12,288 latents, k=32, batch 512, 2M tokens).
# The default lr (finsae.sae.default_lr: 1e-3 at this budget) is the `demo` run itself (tag=demo, made by
# `make saes`); this script adds the other points, sae_eval FVU per lr in
# artifacts/sae/minilm/layer_3/lr_*/summary.json; `python -m finsae.report` tabulates and plots them
# (artifacts/report/lr_sweep.{md,png}).
# The SAE corpus excludes the evaluation period by construction, so nothing here sees a test period.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for lr in ${LRS:-5e-4 2e-3 4e-3 2.3e-4}; do
  $PY train.py experiment=demo model=minilm layer=3 sae.lr=$lr tag=lr_$lr downstream_docs=0 skip_if_done=true "$@"
done

"""Feature comparison across a base model and its finance twin, layer by layer (pure core: no Hydra, Lightning or W&B).

The stage (`python analyze.py`, glue ``finsae.glue.analyze_stage``) in files: ``saes`` (the pair's SAEs found
and checked), ``heldout`` (the analysis text), ``run`` (the steps on typed settings), ``layers`` (one layer's
job), ``compare`` / ``crosscoder`` / ``warmstart`` (the three diffing methods), ``findings``, ``evolution`` /
``method_plots`` / ``plotting`` (figures), ``artifacts`` (the files written and their readers)."""

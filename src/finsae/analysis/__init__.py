"""Feature comparison across a base model and its finance twin, layer by layer (pure core: no Hydra, Lightning or W&B).

The stage (`python analyze.py`, glue ``finsae.glue.analyze_stage``) in files: ``saes`` (the pair's SAEs found
and checked), ``heldout`` (the analysis text), ``run`` (the steps on typed settings), ``layers`` (one layer's
job), ``methods`` (the diffing methods as plug-ins behind one interface, and their registry), their science in
``compare`` (with ``overlaps``, ``selectivity``, ``controls``, ``feature_table``) / ``crosscoder`` /
``warmstart``, ``rows`` (the typed layer row), ``config`` (every knob, each method's in its own block),
``findings``, ``evolution`` / ``method_plots`` / ``plotting`` (figures), ``artifacts`` (the files written and
their readers)."""

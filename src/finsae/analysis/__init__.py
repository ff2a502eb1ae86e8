"""Feature comparison across a base model and its finance twin, layer by layer (pure core: no Hydra, Lightning or W&B)."""

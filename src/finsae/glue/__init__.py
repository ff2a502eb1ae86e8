"""Glue between the pure core and the frameworks: Hydra schemas, Lightning modules, W&B tracking.

Only modules in this package import hydra, lightning or wandb.
"""

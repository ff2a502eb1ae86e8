"""finsae: sparse autoencoders on a base encoder and its finance-tuned twin.

The science lives in pure torch/numpy/pandas packages (``data``, ``models``, ``activations``,
``sae``, ``finetune``); ``finsae.glue`` holds the Lightning, Hydra and W&B adapters. Importing
``finsae`` or any core package never imports Hydra, Lightning or W&B.
"""

__version__ = "0.1.0"

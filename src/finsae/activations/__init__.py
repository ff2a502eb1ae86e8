"""Activation cache: per-layer hidden states of real tokens, computed once, checked on every open.

Layout under ``root`` (normally ``paths.activations_root(artifacts)``)::

    tokens/<corpus>-len<L>-<windowing>-<hash>/     token table, one per (tokenizer, corpus, tokenization):
        manifest.json tokens.parquet windows.parquet docs.parquet     shared by both models of a pair
    <model>-<corpus>-layer<i>-<hash>/              one layer of one model (layer -1: "emb")
        manifest.json                              model + weights hash, layer, corpus + hash, token table,
                                                   shape, dtype, shards (rows, bytes, sha256), config, version
        shard_00000.npy ...                        [N, d] fp16 rows, row i = token row i, <= shard_mb each
        special_00000.npy ...                      optional [CLS]/[SEP] rows ([2 * windows, d])
        verified.json                              written after the first full checksum pass
    <key>.lock                                     filelock: one builder per key

The hash in a layer key covers the model weights, the token table key (tokenizer fingerprint, corpus content
hash, max_length, windowing), the layer, the compute dtype and whether specials are kept.
"""

from finsae.activations.batches import ActivationBatches, sae_eval_docs, split_rows
from finsae.activations.config import ExtractConfig
from finsae.activations.extract import build_activations, check_aligned
from finsae.activations.paired import PairedArray, PairedStore, block_scales
from finsae.activations.shards import ShardedArray
from finsae.activations.store import ActivationStore, SpecialActivations, open_store
from finsae.activations.token_table import TokenTable, ensure_token_table, token_context
from finsae.activations.windows import WindowingStats

__all__ = [
    "ActivationBatches", "ActivationStore", "ExtractConfig", "PairedArray", "PairedStore", "ShardedArray", "SpecialActivations", "TokenTable",
    "WindowingStats", "block_scales", "build_activations", "check_aligned", "ensure_token_table", "open_store", "sae_eval_docs",
    "split_rows", "token_context",
]

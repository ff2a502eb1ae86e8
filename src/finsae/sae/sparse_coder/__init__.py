"""Sparse coders: the trained top-k SAE and a naive dense reference of the same maths."""

from finsae.sae.sparse_coder.dense import dense_reference_forward
from finsae.sae.sparse_coder.topk import EncoderOutput, ForwardOutput, TopKSAE

__all__ = ["EncoderOutput", "ForwardOutput", "TopKSAE", "dense_reference_forward"]

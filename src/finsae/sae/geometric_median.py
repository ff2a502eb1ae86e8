"""Geometric median of a point cloud (Weiszfeld's algorithm), used to initialise ``b_dec``.

The geometric median minimises the sum of Euclidean distances to the points, so unlike the
mean it is not dragged around by a few outlying activations (BERT-like encoders have some
very large-norm tokens). Weiszfeld's iteration is a re-weighted mean with weights
``1 / ||p - y||``; distances are floored at ``eps`` so a data point can be the answer.
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def geometric_median(points: Tensor, max_iter: int = 200, tol: float = 1e-7, eps: float = 1e-12) -> Tensor:
    """Geometric median of the rows of ``points [n, d]``, in ``points``' dtype and device.

    Computes in float64, starts from the coordinate-wise mean and stops when a step moves the
    estimate by less than ``tol`` times its scale (mean distance to the points) or after
    ``max_iter`` iterations. Rows that are all identical give that row exactly.
    """
    if points.ndim != 2 or points.shape[0] == 0:
        raise ValueError(f"geometric_median expects a non-empty [n, d] tensor, got shape {tuple(points.shape)}")
    p = points.detach().to(torch.float64)
    y = p.mean(0)
    for _ in range(max_iter):
        dist = torch.linalg.vector_norm(p - y, dim=1)
        w = 1.0 / dist.clamp_min(eps)
        y_new = (w[:, None] * p).sum(0) / w.sum()
        step = torch.linalg.vector_norm(y_new - y)
        y = y_new
        if step <= tol * max(float(dist.mean()), eps):
            break
    return y.to(points.dtype)

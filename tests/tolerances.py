"""Tolerances for comparing floats that two code paths (or two CPUs) compute with different reduction orders.

The suite runs on AMD EPYC (AVX2, no bf16 units) and Intel Xeon (AVX-512, AMX bf16) machines; their BLAS and
vectorised reductions sum in different orders, so a float32 result can move by a few ulps between them (1.2e-7
was seen on a loss of about 1). Bit-identity is asserted only where one code path runs twice on one machine.
"""

FLOAT32_REDUCTION_TOL = 1e-6
"""Absolute slack for float32 sums/GEMMs of O(1) values computed by two paths or on two CPUs."""

FLOAT64_TOL = 1e-12
"""Absolute slack for float64 statistics (e.g. a bootstrap percentile bound that equals its estimate)."""

EXPORT_FLOAT32_TOL = 1e-5
"""Relative and absolute slack between a float32 SAE's outputs (activations O(1)) in finsae and the same SAE
exported and run by another library: the export folds ``norm_scale`` into the weights (a few ulps of rounding
per product) and the other library's kernels sum in their own order (sparsify decodes with ``embedding_bag``)."""

EXPORT_TIE_GAP = 1e-4
"""A token whose k-th and (k+1)-th pre-activations are closer than this may legitimately pick another latent
after rounding differences of :data:`EXPORT_FLOAT32_TOL`; such near ties are left out of a latent-id comparison."""

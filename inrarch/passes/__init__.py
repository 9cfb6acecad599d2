"""Graph-to-graph passes over inrarch IR, and the pipeline that runs them in order.

Each pass is a small function ``pass(graph) -> graph`` that keeps the graph's meaning (checked
by the tests against :func:`inrarch.ir.evaluate`).
"""

from .cleanup import eliminate_dead_code, merge_common_subexpressions
from .gathers import fold_gather_chains
from .arithmetic import fold_scale_chains, fuse_scale_into_nonlinear
from .weights import pair_shared_weights, weight_pairs

__all__ = ["PIPELINE", "optimize", "eliminate_dead_code", "merge_common_subexpressions",
           "fold_gather_chains", "fold_scale_chains", "fuse_scale_into_nonlinear", "pair_shared_weights",
           "weight_pairs"]

PIPELINE = (
    merge_common_subexpressions,
    fold_gather_chains,
    fold_scale_chains,
    fuse_scale_into_nonlinear,
    merge_common_subexpressions,
    eliminate_dead_code,
    pair_shared_weights,
)


def optimize(graph, passes=PIPELINE):
    """Run ``passes`` in order, then name the nodes by their final position."""
    for simplify in passes:
        graph = simplify(graph)
    return graph.rename()

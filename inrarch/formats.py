"""Number formats: range analysis picks the fixed-point format of every edge.

Ranges come from calibration: the graph runs in float64 on samples drawn from the input domain
(its corners, its centre and uniform random points), and each node gets the format of the chosen
width whose integer part holds its largest magnitude times a safety ``margin``. Nonlinearities
with a known bound (sin, cos, tanh, sigmoid, step) get that bound instead. A forced format
overrides all of this.
"""

import itertools

import numpy as np

from cores.fixed import Q

from .ir import evaluate

__all__ = ["calibration_inputs", "assign_formats"]

_BOUNDED = {"sin": 1.0, "cos": 1.0, "tanh": 1.0, "sigmoid": 1.0, "step": 1.0}


def calibration_inputs(shape, domain, samples=256, seed=0):
    """Points of the input domain: all corners (up to 64), the centre, and uniform random points."""
    low, high = domain
    features = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    corners = list(itertools.islice(itertools.product((low, high), repeat=features), 64))
    points = np.concatenate([np.asarray(corners, dtype=np.float64).reshape(-1, features),
                             np.full((1, features), (low + high) / 2.0),
                             rng.uniform(low, high, size=(samples, features))])
    return points.reshape(-1, *shape)


def assign_formats(graph, *, width=32, margin=2.0, domain=(-1.0, 1.0), forced=None, samples=256):
    """Set ``node.attrs["format"]`` on every node and return the calibrated magnitudes."""
    values = evaluate(graph, calibration_inputs(graph.input.shape, domain, samples))
    magnitudes = {node: float(np.max(np.abs(values[node]))) for node in graph.nodes}
    for node in graph.nodes:
        if forced is not None:
            node.attrs["format"] = forced
        elif node.op == "input":
            node.attrs["format"] = Q.for_range(max(abs(domain[0]), abs(domain[1])), width)
        elif node.op in _BOUNDED:
            node.attrs["format"] = Q.for_range(_BOUNDED[node.op], width)
        else:
            node.attrs["format"] = Q.for_range(magnitudes[node] * margin, width)
    return magnitudes

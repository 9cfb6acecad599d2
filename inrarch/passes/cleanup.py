"""Dead-code elimination and common-subexpression merging."""

import hashlib

import numpy as np

from ..ir import Weight
from ..ops import OPS


def eliminate_dead_code(graph):
    """Drop nodes no output depends on."""
    return graph.topological()


def _attr_key(value):
    if isinstance(value, np.ndarray):
        return ("array", value.shape, hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest())
    if isinstance(value, Weight):
        return ("weight", value.digest)
    if isinstance(value, (list, tuple)):
        return tuple(_attr_key(v) for v in value)
    return value


def merge_common_subexpressions(graph):
    """Replace every node that repeats an earlier one (same op, inputs and attributes) by it.

    Nested forward-mode derivatives recompute the same lower-order products many times; this is
    what turns them back into one computation per unique partial derivative.
    """
    graph.topological()
    seen, replacement = {}, {}
    for node in graph.nodes:
        node.inputs = [replacement.get(source, source) for source in node.inputs]
        if node.op == "input":
            continue
        inputs = [id(source) for source in node.inputs]
        if OPS[node.op].commutative:
            inputs.sort()
        key = (node.op, tuple(inputs), node.shape, tuple(sorted((k, _attr_key(v)) for k, v in node.attrs.items())))
        if key in seen:
            replacement[node] = seen[key]
        else:
            seen[key] = node
    graph.outputs = [replacement.get(out, out) for out in graph.outputs]
    return graph.topological()

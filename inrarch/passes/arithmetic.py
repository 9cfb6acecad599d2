"""Folding of constant scalings."""

from ..ops import OPS


def fold_scale_chains(graph):
    """``scale(scale(x, a), b)`` → ``scale(x, a*b)``, and ``neg(neg(x))`` → ``x``."""
    graph.topological()
    for node in graph.nodes:
        source = node.inputs[0] if node.inputs else None
        if node.op == "scale" and source.op == "scale":
            node.inputs = [source.inputs[0]]
            node.attrs["value"] = node.attrs["value"] * source.attrs["value"]
        elif node.op == "scale" and source.op == "neg":
            node.inputs = [source.inputs[0]]
            node.attrs["value"] = -node.attrs["value"]
        elif node.op == "neg" and source.op == "neg" and node not in graph.outputs:
            graph.replace_uses(node, source.inputs[0])
    return graph.topological()


def fuse_scale_into_nonlinear(graph):
    """``sin(scale(x, c))`` → ``sin(x)`` with ``scale=c``: the core folds the constant into its
    range reduction, which is both cheaper and more precise than a separate multiply."""
    graph.topological()
    for node in graph.nodes:
        if OPS[node.op].scaled and node.inputs[0].op == "scale":
            source = node.inputs[0]
            node.attrs["scale"] = node.attrs.get("scale", 1.0) * source.attrs["value"]
            node.inputs = [source.inputs[0]]
    return graph.topological()

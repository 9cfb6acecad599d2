"""Folding of data-movement (gather) nodes."""

from ..ir import Node


def _compose(outer, inner_of_port):
    """Entries of ``outer`` rewritten to read through the gathers it reads from."""
    inputs, entries = [], []

    def port_of(node):
        if node not in inputs:
            inputs.append(node)
        return inputs.index(node)

    for entry in outer.attrs["entries"]:
        if isinstance(entry, float):
            entries.append(entry)
            continue
        port, element = entry
        source = outer.inputs[port]
        inner = inner_of_port.get(port)
        if inner is None:
            entries.append((port_of(source), element))
            continue
        through = inner.attrs["entries"][element]
        entries.append(through if isinstance(through, float) else (port_of(inner.inputs[through[0]]), through[1]))
    return inputs, tuple(entries)


def fold_gather_chains(graph):
    """Merge a gather that reads other gathers into one gather, and drop identity gathers.

    Data movement costs a buffer and latency in hardware; a chain of views, transposes and
    stacks needs at most one.
    """
    graph.topological()
    for node in graph.nodes:
        if node.op != "gather":
            continue
        inner = {port: source for port, source in enumerate(node.inputs) if source.op == "gather"}
        if inner:
            node.inputs, node.attrs["entries"] = _compose(node, inner)
    for node in list(graph.nodes):
        if (node.op == "gather" and len(node.inputs) == 1 and node.inputs[0].shape == node.shape
                and node.attrs["entries"] == tuple((0, k) for k in range(node.numel))
                and node not in graph.outputs):
            graph.replace_uses(node, node.inputs[0])
    return graph.topological()

"""Which matmuls share the memory of one stored matrix."""

__all__ = ["pair_shared_weights", "weight_pairs"]


def pair_shared_weights(graph):
    """Pair the nodes that read one stored matrix (``attrs["weight"]``, the matmuls), two by two in
    graph order, recording the pair in each one's ``node.meta["weight_pair"]``.

    A block RAM has two ports, so two matmuls on one matrix (typically ``W`` and ``Wᵀ``) can share
    its memory banks as the two channels of one core, in the pair's order. The pairing decides that
    core's channels, and the number formats must give both matmuls one input and one output
    format, so it is made once, here, before formats and lowering read it.
    """
    groups = {}
    for node in graph.nodes:
        node.meta.pop("weight_pair", None)
        if "weight" in node.attrs:
            groups.setdefault(id(node.attrs["weight"]), []).append(node)
    for nodes in groups.values():
        for pair in zip(nodes[0:-1:2], nodes[1::2]):
            for node in pair:
                node.meta["weight_pair"] = pair
    return graph


def weight_pairs(graph):
    """The pairs :func:`pair_shared_weights` recorded, in graph order."""
    pairs, seen = [], set()
    for node in graph.nodes:
        pair = node.meta.get("weight_pair")
        if pair is not None and id(pair[0]) not in seen:
            seen.add(id(pair[0]))
            pairs.append(list(pair))
    return pairs

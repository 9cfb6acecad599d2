"""Which matmuls share the memory of one stored matrix."""

__all__ = ["pair_shared_weights", "weight_pairs"]


def pair_shared_weights(graph):
    """Pair the matmuls that read one stored matrix, two by two in graph order, recording each
    one's partner in ``node.meta["weight_partner"]``.

    A block RAM has two ports, so two matmuls on one matrix (typically ``W`` and ``Wᵀ``) can share
    its memory banks as the two channels of one core. The pairing decides that core's channels,
    and the number formats must give both matmuls one input and one output format, so it is made
    once, here, before formats and lowering read it.
    """
    groups = {}
    for node in graph.nodes:
        node.meta.pop("weight_partner", None)
        if node.op == "matmul":
            groups.setdefault(id(node.attrs["weight"]), []).append(node)
    for nodes in groups.values():
        for first, second in zip(nodes[0:-1:2], nodes[1::2]):
            first.meta["weight_partner"], second.meta["weight_partner"] = second, first
    return graph


def weight_pairs(graph):
    """The pairs :func:`pair_shared_weights` recorded, in graph order."""
    pairs, paired = [], set()
    for node in graph.nodes:
        partner = node.meta.get("weight_partner")
        if partner is not None and id(node) not in paired:
            paired.add(id(partner))
            pairs.append([node, partner])
    return pairs

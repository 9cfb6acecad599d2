"""inrarch's intermediate representation: a per-sample dataflow graph of small streaming ops.

Every node computes one per-sample tensor, streamed element by element in row-major order.
Parameters are not nodes: they are constants held in the attributes of the ops that use them.

Ops
---
``input``                   the sample ``x``; attrs: none
``add``, ``sub``, ``mul``   element-wise on two inputs of the same shape
``neg``                     element-wise
``scale``                   ``a * value``; attrs: ``value`` (float)
``add_const``, ``mul_const`` ``a (+|*) values``; attrs: ``values`` (array of the node's shape)
``sin`` ``cos`` ``tanh`` ``sigmoid`` ``exp`` ``relu`` ``step`` ``softplus`` ``sqrt``
                            ``f(scale * a)``; attrs: ``scale`` (float); ``sqrt`` is 0 for
                            arguments ≤ 0
``matmul``                  rows of ``a`` (M, K) times a stored matrix: ``(M, N)``;
                            attrs: ``weight`` (:class:`Weight`), ``transposed`` (bool): with
                            ``transposed=False`` row ``m`` of the result is ``W @ a[m]``
                            (W is N × K), with ``True`` it is ``W.T @ a[m]`` (W is K × N)
``sum``                     sums of ``group`` consecutive elements; attrs: ``group``
``gather``                  data movement: each output element is an element of one input or a
                            constant; attrs: ``entries`` (tuple of ``(port, element)`` or float)
"""

import hashlib
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Node", "Graph", "Weight", "ELEMENTWISE", "NONLINEAR", "evaluate"]

ELEMENTWISE = {"add", "sub", "mul"}
NONLINEAR = {"sin", "cos", "tanh", "sigmoid", "exp", "relu", "step", "softplus", "sqrt"}


@dataclass(frozen=True, eq=False)
class Weight:
    """A stored matrix, shared by every matmul that reads it (as W or as Wᵀ)."""

    name: str
    matrix: np.ndarray

    @property
    def digest(self):
        return hashlib.sha256(np.ascontiguousarray(self.matrix).tobytes() + str(self.matrix.shape).encode()).hexdigest()


@dataclass(eq=False)
class Node:
    op: str
    inputs: list
    shape: tuple
    attrs: dict = field(default_factory=dict)
    name: str = ""
    source: str = ""

    @property
    def numel(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def __repr__(self):
        return f"<{self.name}: {self.op}{list(self.shape)}>"


class Graph:
    """A DAG of :class:`Node` with one ``input`` node and an ordered list of outputs."""

    def __init__(self, input_node, outputs, nodes, weights=()):
        self.input = input_node
        self.outputs = list(outputs)
        self.nodes = list(nodes)
        self.weights = list(weights)

    def users(self):
        users = {node: [] for node in self.nodes}
        for node in self.nodes:
            for source in node.inputs:
                users[source].append(node)
        return users

    def op_counts(self):
        counts = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return dict(sorted(counts.items()))

    def replace_uses(self, old, new):
        for node in self.nodes:
            node.inputs = [new if source is old else source for source in node.inputs]
        self.outputs = [new if out is old else out for out in self.outputs]

    def topological(self):
        """Reorder ``nodes`` so every node follows its inputs, keeping only nodes the outputs need."""
        order, seen = [], set()
        for root in self.outputs:
            stack = [(root, False)]
            while stack:
                node, expanded = stack.pop()
                if node in seen:
                    continue
                if expanded:
                    seen.add(node)
                    order.append(node)
                    continue
                stack.append((node, True))
                stack.extend((source, False) for source in reversed(node.inputs) if source not in seen)
        if self.input not in seen:
            order.insert(0, self.input)
        self.nodes = order
        return self

    def rename(self):
        """Give nodes stable names from their order and op (used in reports and Verilog)."""
        for index, node in enumerate(self.nodes):
            node.name = f"n{index}_{node.op}"
        return self

    def macs(self):
        """Multiply-accumulates per sample done by matmuls."""
        return sum(node.numel * node.inputs[0].shape[-1] for node in self.nodes if node.op == "matmul")


def _apply(node, args):
    op, attrs = node.op, node.attrs
    batch = args[0].shape[0] if args else None
    if op == "add":
        return args[0] + args[1]
    if op == "sub":
        return args[0] - args[1]
    if op == "mul":
        return args[0] * args[1]
    if op == "neg":
        return -args[0]
    if op == "scale":
        return args[0] * attrs["value"]
    if op == "add_const":
        return args[0] + attrs["values"]
    if op == "mul_const":
        return args[0] * attrs["values"]
    if op in NONLINEAR:
        z = args[0] * attrs.get("scale", 1.0)
        return {"sin": np.sin, "cos": np.cos, "tanh": np.tanh, "exp": np.exp,
                "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
                "relu": lambda v: np.maximum(v, 0.0),
                "softplus": lambda v: np.logaddexp(0.0, v),
                "sqrt": lambda v: np.sqrt(np.maximum(v, 0.0)),
                "step": lambda v: (v > 0).astype(np.float64)}[op](z)
    if op == "matmul":
        w = attrs["weight"].matrix
        return args[0] @ (w if attrs["transposed"] else w.T)
    if op == "sum":
        flat = args[0].reshape(batch, -1, attrs["group"])
        return flat.sum(axis=-1).reshape(batch, *node.shape)
    if op == "gather":
        table, index = _gather_table(node)
        flat = np.concatenate([a.reshape(batch, -1) for a in args] + [np.broadcast_to(table, (batch, len(table)))], axis=1)
        return flat[:, index].reshape(batch, *node.shape)
    raise ValueError(f"no reference semantics for op {op!r}")


def _gather_table(node):
    """Constants of a gather and flat indices into (inputs..., constants) for its entries."""
    offsets = np.cumsum([0] + [source.numel for source in node.inputs])
    constants = sorted({entry for entry in node.attrs["entries"] if isinstance(entry, float)})
    slot = {value: offsets[-1] + k for k, value in enumerate(constants)}
    index = np.array([slot[e] if isinstance(e, float) else offsets[e[0]] + e[1] for e in node.attrs["entries"]],
                     dtype=np.int64)
    return np.array(constants, dtype=np.float64), index


def evaluate(graph, x):
    """Run ``graph`` in float64 on a batch ``x`` of shape ``(batch, *input.shape)``.

    Returns a dict from node to its values, shape ``(batch, *node.shape)``.
    """
    values = {graph.input: np.asarray(x, dtype=np.float64).reshape(-1, *graph.input.shape)}
    for node in graph.nodes:
        if node is graph.input:
            continue
        values[node] = _apply(node, [values[source] for source in node.inputs])
    return values

"""inrarch's intermediate representation: a per-sample dataflow graph of small streaming ops.

Every node computes one per-sample tensor, streamed element by element in row-major order.
Parameters are not nodes: they are constants held in the attributes of the ops that use them.

The ops, their attributes and their meaning are registered in :mod:`inrarch.ops`.
"""

import contextlib
import hashlib
from dataclasses import dataclass, field

import numpy as np

from .ops import OPS

__all__ = ["Node", "Graph", "Weight", "evaluate", "runtime_tensors", "loaded"]


@dataclass(frozen=True, eq=False)
class Weight:
    """A stored tensor: a matrix, shared by every matmul that reads it (as W or as Wᵀ), or the
    constant vector of an ``add_const`` or ``mul_const`` that a runtime-weight design loads.

    Attributes
    ----------
    name : str
    matrix : numpy.ndarray
        Its values; for a runtime tensor, those of the model it was captured from (the example).
    runtime : int or None
        For a tensor the design loads at run time, its output index in the graph's
        :class:`~inrarch.capture.runtime.WeightProgram`, which computes it from any model's
        parameters; None for a constant of the hardware.
    fingerprint : str
        For a runtime tensor, the digest of its values at the example and at the probes
        (:attr:`~inrarch.capture.runtime.RuntimeTensor.fingerprint`).
    """

    name: str
    matrix: np.ndarray
    runtime: int = None
    fingerprint: str = ""

    @property
    def digest(self):
        """Equal for equal tensors: the values of a constant, the function of the parameters of a runtime tensor."""
        if self.runtime is not None:
            return self.fingerprint
        return hashlib.sha256(np.ascontiguousarray(self.matrix).tobytes() + str(self.matrix.shape).encode()).hexdigest()


@dataclass(eq=False)
class Node:
    """One op of the graph.

    Attributes
    ----------
    op : str
        The op's name in :data:`inrarch.ops.OPS`.
    inputs : list of Node
    shape : tuple
        The per-sample shape of the node's value.
    attrs : dict
        The op's parameters (:mod:`inrarch.ops`): part of its meaning, compared by the passes.
    meta : dict
        What the stages after the IR passes record about the node, never part of its meaning:
        ``"weight_pair"`` (the two matmuls on one stored matrix, by
        :func:`inrarch.passes.pair_shared_weights`), ``"format"`` (its number format, a
        :class:`cores.fixed.Q`, by :mod:`inrarch.formats`) and ``"weight_width"`` (bits of a
        matmul's stored weights, by :mod:`inrarch.formats`).
    name : str
    source : str
        The user's source line the node was captured from.
    """

    op: str
    inputs: list
    shape: tuple
    attrs: dict = field(default_factory=dict)
    name: str = ""
    source: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def numel(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def __repr__(self):
        return f"<{self.name}: {self.op}{list(self.shape)}>"


class Graph:
    """A DAG of :class:`Node` with one ``input`` node and an ordered list of outputs."""

    def __init__(self, input_node, outputs, nodes, weights=(), program=None):
        self.input = input_node
        self.outputs = list(outputs)
        self.nodes = list(nodes)
        self.weights = list(weights)
        #: The :class:`~inrarch.capture.runtime.WeightProgram` of a runtime-weight graph, else None.
        self.program = program

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
        """Multiply-accumulates per sample done by the folded cores (the matmuls: :attr:`OpSpec.fold`)."""
        return sum(OPS[node.op].fold.macs(node) for node in self.nodes if OPS[node.op].fold is not None)


def evaluate(graph, x):
    """Run ``graph`` in float64 on a batch ``x`` of shape ``(batch, *input.shape)``.

    Returns a dict from node to its values, shape ``(batch, *node.shape)``.
    """
    values = {graph.input: np.asarray(x, dtype=np.float64).reshape(-1, *graph.input.shape)}
    for node in graph.nodes:
        if node is graph.input:
            continue
        values[node] = OPS[node.op].semantics(node, [values[source] for source in node.inputs])
    return values


def runtime_tensors(graph):
    """The stored tensors of ``graph`` that a runtime-weight design loads, by their program output."""
    found = {}
    for node in graph.nodes:
        for value in node.attrs.values():
            if isinstance(value, Weight) and value.runtime is not None:
                found.setdefault(value.runtime, value)
    return [found[index] for index in sorted(found)]


@contextlib.contextmanager
def loaded(graph, tensors):
    """Inside the block, every runtime stored tensor of ``graph`` holds ``tensors[weight.runtime]`` (what
    ``graph.program`` computes for another model), as a design does once it loaded that model."""
    saved = []
    try:
        for weight in runtime_tensors(graph):
            saved.append((weight, weight.matrix))
            value = np.asarray(tensors[weight.runtime], dtype=np.float64)
            if value.shape != weight.matrix.shape:
                value = value.reshape(weight.matrix.shape)
            object.__setattr__(weight, "matrix", value)
        yield
    finally:
        for weight, matrix in saved:
            object.__setattr__(weight, "matrix", matrix)

"""Bit-exact software emulation of a design's arithmetic.

Every core in ``cores/`` carries a ``reference`` method: the raw integers its hardware gives for
given raw inputs. Chaining them along the graph gives, for any batch of samples, exactly the
outputs the generated Verilog computes, in a fraction of a second and with no simulator. The
number-format search (:mod:`inrarch.formats`) measures the error of candidate formats this way,
and the tests check it against Verilator word for word.

:class:`Emulator` keeps the raw values of every node, so after the format of one node changes,
:meth:`Emulator.update` recomputes only what depends on that node.
"""

import numpy as np

from cores.matmul import MatVec

from .ir import evaluate
from .lower import WEIGHT_WIDTH, node_core

__all__ = ["Emulator", "emulate", "relative_errors"]


def _matmul_core(node):
    kind = "transpose" if node.attrs["transposed"] else "forward"
    return MatVec(node.attrs["weight"].matrix, node.inputs[0].attrs["format"], node.attrs["format"],
                  channels=(kind,), parallel=1, weight_width=WEIGHT_WIDTH)


def _core_key(node):
    return (node.attrs["format"],) + tuple(source.attrs["format"] for source in node.inputs)


class Emulator:
    """Raw fixed-point values of every node of ``graph`` (formats assigned) for samples ``x``.

    Parameters
    ----------
    graph : Graph
        With ``node.attrs["format"]`` set on every node.
    x : array
        Samples, shape ``(batch, *graph.input.shape)``.
    """

    def __init__(self, graph, x):
        self.graph = graph
        self.x = np.asarray(x, dtype=np.float64).reshape(-1, *graph.input.shape)
        self._batch = self.x.shape[0]
        self._cores = {}
        self.raw = {}
        for node in graph.nodes:
            self.raw[node] = self._compute(node)

    def values(self, node):
        """Real values of ``node``, shape ``(batch, *node.shape)``."""
        return node.attrs["format"].to_float(self.raw[node]).reshape(self._batch, *node.shape)

    def outputs(self):
        return [self.values(node) for node in self.graph.outputs]

    def update(self, changed):
        """Recompute every node that depends on a node of ``changed`` (whose formats changed)."""
        dirty = set(changed)
        for node in self.graph.nodes:
            if node in dirty or any(source in dirty for source in node.inputs):
                dirty.add(node)
                self.raw[node] = self._compute(node)

    def _core(self, node):
        key = _core_key(node)
        cached = self._cores.get(node)
        if cached is None or cached[0] != key:
            core = _matmul_core(node) if node.op == "matmul" else node_core(node)[0]
            core._MustUse__silence = True
            cached = self._cores[node] = (key, core)
        return cached[1]

    def _compute(self, node):
        """Raw values of ``node``, shape ``(batch, numel)`` (object integers)."""
        if node.op == "input":
            return node.attrs["format"].quantize(self.x.reshape(self._batch, -1))
        core = self._core(node)
        inputs = [self.raw[source] for source in node.inputs]
        if node.op == "matmul":
            rows = inputs[0].reshape(self._batch, -1, node.inputs[0].shape[-1])
            return core.reference(rows, 0).reshape(self._batch, -1)
        return np.asarray(core.reference(*inputs), dtype=object).reshape(self._batch, -1)


def emulate(graph, x):
    """The outputs the hardware computes for samples ``x``, as float64 arrays (one per output)."""
    return Emulator(graph, x).outputs()


def relative_errors(graph, outputs, x):
    """Per output, ``max |outputs - float64 reference| / max |reference|`` over the samples."""
    values = evaluate(graph, x)
    errors = []
    for node, got in zip(graph.outputs, outputs):
        reference = values[node]
        scale = max(float(np.max(np.abs(reference))), np.finfo(np.float64).tiny)
        errors.append(float(np.max(np.abs(got - reference))) / scale)
    return errors

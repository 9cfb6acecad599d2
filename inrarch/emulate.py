"""Bit-exact software emulation of a design's arithmetic.

Every core in ``cores/`` carries a ``reference`` method: the raw integers its hardware gives for
given raw inputs. Its model (``Core.model(...)``, :mod:`cores.model`) has the same method without
building any hardware. Chaining them along the graph gives, for any batch of samples, exactly the
outputs the generated Verilog computes, in a fraction of a second and with no simulator. The
number-format search (:mod:`inrarch.formats`) measures the error of candidate formats this way,
and the tests check it against Verilator word for word.

:class:`Emulator` keeps the raw values of every node, so after the format of one node changes,
:meth:`Emulator.update` recomputes only what depends on that node.
"""

import math

import numpy as np

from cores.fixed import exact_integers
from cores.matmul import MatVec

from .errors import CompileError
from .ir import evaluate
from .lower import weight_width
from .ops import OPS

__all__ = ["Emulator", "node_model", "emulate", "relative_errors", "emulation_errors"]


def node_model(node):
    """The model of the core that computes ``node`` (any op but ``input``), built from the op's
    registered core and arguments (:data:`inrarch.ops.OPS`), with no hardware. A matmul is a core
    of its own on one multiplier: its timing does not matter here."""
    attrs, fmt = node.attrs, node.meta["format"]
    if node.op == "matmul":
        kind = "transpose" if attrs["transposed"] else "forward"
        return MatVec.model(attrs["weight"].matrix, node.inputs[0].meta["format"], fmt, channels=(kind,), parallel=1,
                            weight_width=weight_width(node), weight_bound=node.meta.get("bound"))
    spec = OPS[node.op]
    if spec.core is None:
        raise CompileError(f"no core implements IR op {node.op!r}")
    args, kwargs = spec.arguments(node, [source.meta["format"] for source in node.inputs], fmt)
    return spec.core.model(*args, **kwargs)


def _core_key(node):
    """What the core of ``node`` depends on: nodes with equal keys share one model. A runtime
    tensor's values (those of the network loaded, :func:`inrarch.ir.loaded`) are part of it."""
    attrs = node.attrs
    if node.op == "matmul":
        structure = (id(attrs["weight"]), id(attrs["weight"].matrix), attrs["transposed"], weight_width(node))
    elif all(isinstance(value, (int, float)) for value in attrs.values()):
        structure = tuple(sorted(attrs.items()))
    else:
        # its own constants or entries, or the values of its runtime vector
        structure = (id(node), id(getattr(attrs.get("values"), "matrix", None)), node.meta.get("weight_width"))
    return (node.op, structure, node.meta["format"]) + tuple(source.meta["format"] for source in node.inputs)


class Emulator:
    """Raw fixed-point values of every node of ``graph`` (formats assigned) for samples ``x``.

    Parameters
    ----------
    graph : Graph
        With ``node.meta["format"]`` set on every node.
    x : array
        Samples, shape ``(batch, *graph.input.shape)``.
    models : dict, optional
        Core models built so far, by structure and formats; pass one dict to several emulators of
        the same graph so that each model is built once.
    """

    def __init__(self, graph, x, models=None):
        self.graph = graph
        self.x = np.asarray(x, dtype=np.float64).reshape(-1, *graph.input.shape)
        self._batch = self.x.shape[0]
        self._models = {} if models is None else models
        self.raw = {}
        for node in graph.nodes:
            self.raw[node] = self._compute(node)

    def values(self, node):
        """Real values of ``node``, shape ``(batch, *node.shape)``."""
        return node.meta["format"].to_float(self.raw[node]).reshape(self._batch, *node.shape)

    def outputs(self):
        return [self.values(node) for node in self.graph.outputs]

    def update(self, changed):
        """Recompute every node that depends on a node of ``changed`` (whose formats changed)."""
        dirty = set(changed)
        for node in self.graph.nodes:
            if node in dirty or any(source in dirty for source in node.inputs):
                dirty.add(node)
                self.raw[node] = self._compute(node)

    def _model(self, node):
        key = _core_key(node)
        if key not in self._models:
            self._models[key] = node_model(node)
        return self._models[key]

    def _compute(self, node):
        """Raw values of ``node``, shape ``(batch, numel)``: int64, or Python ints if too wide."""
        fmt = node.meta["format"]
        if node.op == "input":
            raw = fmt.quantize(self.x.reshape(self._batch, -1))
        else:
            raw = self._model(node).reference(*(self.raw[source] for source in node.inputs))
        return exact_integers(raw, fmt.width).reshape(self._batch, -1)


def emulate(graph, x):
    """The outputs the hardware computes for samples ``x``, as float64 arrays (one per output)."""
    return Emulator(graph, x).outputs()


def relative_errors(outputs, references):
    """Per output, ``max |output - reference| / max |reference|`` (0 where both are all zero).

    ``references`` may be numpy arrays or torch tensors; each output is compared in its shape.
    """
    errors = []
    for got, reference in zip(outputs, references):
        reference = reference.detach().numpy() if hasattr(reference, "detach") else np.asarray(reference)
        got = np.asarray(got, dtype=np.float64).reshape(reference.shape)
        scale = float(np.max(np.abs(reference)))
        difference = float(np.max(np.abs(got - reference)))
        errors.append(difference / scale if scale > 0 else (0.0 if difference == 0 else math.inf))
    return errors


def emulation_errors(graph, x):
    """:func:`relative_errors` of the hardware's outputs for samples ``x`` against float64."""
    values = evaluate(graph, x)
    return relative_errors(emulate(graph, x), [values[node] for node in graph.outputs])

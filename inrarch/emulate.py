"""Bit-exact software emulation of a design's arithmetic.

Every core in ``cores/`` carries a ``reference`` method: the raw integers its hardware gives for
given raw inputs. Its model (``Core.model(...)``, :mod:`cores.model`) has the same method without
building any hardware. Chaining them along the graph gives, for any batch of samples, exactly the
outputs the generated Verilog computes, in a fraction of a second and with no simulator. The
number-format search (:mod:`inrarch.formats`) measures the error of candidate formats this way,
and the tests check it against Verilator word for word.

:class:`Emulator` keeps the raw values of every node, so that the emulator of formats that differ
in a few nodes (:meth:`Emulator.updated`) recomputes only what depends on those nodes.
"""

import math

import numpy as np

from cores.fixed import exact_integers

from .ir import evaluate
from .lower import Target
from .ops import OPS

__all__ = ["Emulator", "node_model", "emulate", "relative_errors", "emulation_errors"]

# The arithmetic of a core does not depend on the device it is built for (only how its products are
# split and pipelined does), so the emulation lowers every node for the default one.
_TARGET = Target()


def node_model(node, formats):
    """The model of what computes ``node`` (any node but the graph's input) with ``formats``: the
    part of the core its registry entry lowers it to (:meth:`inrarch.ops.OpSpec.lower`), with no
    hardware. Its timing does not matter here."""
    return OPS[node.op].lower(node, formats, _TARGET, 1).endpoints[node].actor


def _core_key(node, formats):
    """What the core of ``node`` depends on: nodes with equal keys share one model. A runtime
    tensor's values (those of the network loaded, :func:`inrarch.ir.loaded`) are part of it."""
    attrs = node.attrs
    if "weight" in attrs:  # a channel of the core of its weight pair, which has the pair's first formats
        group = node.meta.get("weight_pair", (node,))
        kinds = tuple(n.attrs["transposed"] for n in group)
        structure = (id(attrs["weight"]), id(attrs["weight"].matrix), kinds, group.index(node),
                     formats.weight_width(node), formats[group[0]], formats[group[0].inputs[0]])
    elif all(isinstance(value, (int, float)) for value in attrs.values()):
        structure = tuple(sorted(attrs.items()))
    else:
        # its own constants or entries, or the values of its runtime vector, and a mul_const's width
        structure = (id(node), id(getattr(attrs.get("values"), "matrix", None)),
                     formats.weight_width(node) if node.op == "mul_const" else None)
    return (node.op, structure, formats[node]) + tuple(formats[source] for source in node.inputs)


class Emulator:
    """Raw fixed-point values of every node of ``graph`` with ``formats`` for samples ``x``.

    Parameters
    ----------
    graph : Graph
    formats : inrarch.formats.Formats
    x : array
        Samples, shape ``(batch, *graph.input.shape)``.
    models : dict, optional
        Core models built so far, by structure and formats; pass one dict to several emulators of
        the same graph so that each model is built once.
    """

    def __init__(self, graph, formats, x, models=None):
        self.graph = graph
        self.formats = formats
        self.x = np.asarray(x, dtype=np.float64).reshape(-1, *graph.input.shape)
        self._batch = self.x.shape[0]
        self._models = {} if models is None else models
        self.raw = {}
        for node in graph.nodes:
            self.raw[node] = self._compute(node)

    def values(self, node):
        """Real values of ``node``, shape ``(batch, *node.shape)``."""
        return self.formats[node].to_float(self.raw[node]).reshape(self._batch, *node.shape)

    def outputs(self):
        return [self.values(node) for node in self.graph.outputs]

    def updated(self, formats):
        """The emulator with ``formats`` instead: a new one, which recomputes only the nodes that
        depend on a node whose format changed and shares the others' values with this one."""
        new = Emulator.__new__(Emulator)
        new.__dict__.update(self.__dict__, formats=formats, raw=dict(self.raw))
        dirty = set(self.formats.changed(formats))
        for node in self.graph.nodes:
            if node in dirty or any(source in dirty for source in node.inputs):
                dirty.add(node)
                new.raw[node] = new._compute(node)
        return new

    def _model(self, node):
        key = _core_key(node, self.formats)
        if key not in self._models:
            self._models[key] = node_model(node, self.formats)
        return self._models[key]

    def _compute(self, node):
        """Raw values of ``node``, shape ``(batch, numel)``: int64, or Python ints if too wide."""
        fmt = self.formats[node]
        if node is self.graph.input:
            raw = fmt.quantize(self.x.reshape(self._batch, -1))
        else:
            raw = self._model(node).reference(*(self.raw[source] for source in node.inputs))
        return exact_integers(raw, fmt.width).reshape(self._batch, -1)


def emulate(graph, formats, x):
    """The outputs the hardware computes for samples ``x``, as float64 arrays (one per output)."""
    return Emulator(graph, formats, x).outputs()


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


def emulation_errors(graph, formats, x):
    """:func:`relative_errors` of the hardware's outputs with ``formats`` for samples ``x`` against float64."""
    values = evaluate(graph, x)
    return relative_errors(emulate(graph, formats, x), [values[node] for node in graph.outputs])

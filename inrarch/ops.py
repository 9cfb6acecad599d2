"""The registry of IR ops: one :class:`OpSpec` per op holds everything inrarch knows about it.

A spec gives the op's float64 semantics (read by :func:`inrarch.ir.evaluate`), the aten ops it
captures and how they translate (:mod:`inrarch.capture`), its range bound (:mod:`inrarch.formats`),
and its lowering: the core that computes it, built for the device (:mod:`inrarch.lower`, and the
emulation, :mod:`inrarch.emulate`). As with ``torch._inductor``'s lowerings, one call registers an
op and one decorator a translation; no other module names an op's semantics, core or bound.
``docs/adding-an-op.md`` walks through adding one.

The registry imports the core library (and with it Amaranth) only when an op is first lowered, so
that the IR, its semantics and capture import without it.

Ops
---
``input``                   the sample ``x``; attrs: none
``add``, ``sub``, ``mul``   element-wise on two inputs of the same shape
``neg``                     element-wise
``scale``                   ``a * value``; attrs: ``value`` (float)
``add_const``, ``mul_const`` ``a (+|*) values``; attrs: ``values`` (array of the node's shape, or
                            with runtime weights a :class:`~inrarch.ir.Weight` the design loads)
``sin`` ``cos`` ``tanh`` ``sigmoid`` ``exp`` ``relu`` ``step`` ``softplus`` ``sqrt`` ``abs``
                            ``f(scale * a)``; attrs: ``scale`` (float); ``sqrt`` is 0 for
                            arguments ≤ 0
``matmul``                  rows of ``a`` (M, K) times a stored matrix: ``(M, N)``;
                            attrs: ``weight`` (:class:`~inrarch.ir.Weight`), ``transposed`` (bool):
                            with ``transposed=False`` row ``m`` of the result is ``W @ a[m]``
                            (W is N × K), with ``True`` it is ``W.T @ a[m]`` (W is K × N)
``sum``                     sums of ``group`` consecutive elements; attrs: ``group``
``gather``                  data movement: each output element is an element of one input or a
                            constant; attrs: ``entries`` (tuple of ``(port, element)`` or float)

Lowerings
---------
A lowering ``lowering(node, formats, target, lanes)`` gives the core that computes ``node`` with
the number formats ``formats`` (:class:`inrarch.formats.Formats`) on ``target``
(:class:`inrarch.lower.Target`: the device, its clock, and the choices lowering made for the whole
design) for ``lanes`` samples per beat, as a :class:`Lowered`: a
:class:`~cores.model.Blueprint` of the core, and for each node it computes (one, or two matmuls
that share one stored matrix) its ports and its part of the core's model.

Translations
------------
A translation ``translate(tr, target, args, kwargs)`` turns one call of an aten op whose arguments
include a streamed value into IR, through the translator ``tr`` of :mod:`inrarch.capture`:
``tr.binary``, ``tr.unary_neg``, ``tr.matmul``, ``tr.reduce_sum``, ``tr.nonlinear``, ``tr.move``
(an aten data-movement op), ``tr.structural`` (any op, run on element indices), ``tr.compare``,
``tr.where``, ``tr.constant`` and ``tr.streamed``. It is registered on the op it exists for
(``tanh_backward`` on ``tanh``), though it may emit other ops too.
"""

import functools
import importlib
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
import torch

from .errors import CompileError

__all__ = ["OpSpec", "Fold", "Lowered", "Endpoint", "OPS", "REFUSED", "register", "nonlinear", "computed_alone",
           "multiplying", "pipelined", "captures", "refuse", "translation", "refusal", "captured", "core_class",
           "constant_values"]

aten = torch.ops.aten


@functools.cache
def core_class(path):
    """The class at the dotted ``path`` (``"cores.nonlinear.Sin"``), imported on first use."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class Endpoint(NamedTuple):
    """How a node meets the core that computes it."""

    inputs: tuple
    """The core's input port names, in the order of ``node.inputs``."""
    output: str
    """The core's output port name."""
    actor: object
    """What computes the node: the core's model, or the part of it that computes the node (a
    channel of a :class:`~cores.matmul.MatVec`). It has the node's ``contract``,
    ``cycle_model(firings)`` and ``reference(*inputs)``."""


@dataclass(frozen=True, eq=False)
class Lowered:
    """What a lowering gives: the core to build, and the :class:`Endpoint` of each node it computes."""

    blueprint: object
    endpoints: dict


@dataclass(frozen=True)
class Fold:
    """An op whose core's multipliers per lane (its *parallelism*) lowering chooses to fill a DSP
    budget (:mod:`inrarch.lower`).

    Attributes
    ----------
    cycles : callable
        ``cycles(node, parallel)``: cycles per sample of the node's core with ``parallel``
        multipliers per lane.
    limit : callable
        ``limit(node)``: the most multipliers per lane that make it faster.
    dsps : callable
        ``dsps(node, formats, target)``: DSP slices per lane of the node's share of its core, with
        the parallelism ``target.parallel`` gives.
    macs : callable
        ``macs(node)``: multiply-accumulates per sample.
    """

    cycles: Callable
    limit: Callable
    dsps: Callable
    macs: Callable


@dataclass(eq=False)
class OpSpec:
    """What inrarch knows about the IR op ``name``.

    Attributes
    ----------
    semantics : callable or None
        ``semantics(node, args)``: the node's float64 values from its inputs' (each of shape
        ``(batch, *shape)``). None for ``input``, which is the sample itself.
    core : str or type or None
        The core class that computes the op, or its dotted path (``"cores.nonlinear.Sin"``),
        imported when first needed (:func:`core_class`); :attr:`core_class` gives the class.
    lowering : callable or None
        ``lowering(node, formats, target, lanes)``: the :class:`Lowered` core that computes the
        node (see the module docstring). None for an op with no hardware.
    bound : float or None
        Largest magnitude of any value of the op, whatever its inputs: formats take it instead
        of a calibrated range.
    scaled : bool
        The op is ``f(scale * a)``; a ``scale`` node before it fuses into its ``scale`` attribute.
    commutative : bool
        The op's two inputs may be swapped: common-subexpression merging compares them unordered.
    fold : Fold or None
        The op's core is folded to a DSP budget (:class:`Fold`).
    captures : dict
        Aten op name → translation (see the module docstring).
    refusals : dict
        Aten op name → why it has no hardware, said in capture's error.
    """

    name: str
    semantics: Callable | None = None
    core: str | type | None = None
    lowering: Callable | None = None
    bound: float | None = None
    scaled: bool = False
    commutative: bool = False
    fold: Fold | None = None
    captures: dict = field(default_factory=dict)
    refusals: dict = field(default_factory=dict)

    @property
    def core_class(self):
        return core_class(self.core) if isinstance(self.core, str) else self.core

    def lower(self, node, formats, target, lanes):
        """The :class:`Lowered` core that computes ``node`` (see :attr:`lowering`)."""
        if self.lowering is None:
            raise CompileError(f"no core implements IR op {self.name!r}")
        return self.lowering(node, formats, target, lanes)


OPS = {}
# Aten ops that no op captures, and why: said in capture's error, so the user knows what to change.
REFUSED = {}


def register(spec):
    """Add ``spec`` to :data:`OPS` and return it."""
    if spec.name in OPS:
        raise ValueError(f"IR op {spec.name!r} is registered twice")
    OPS[spec.name] = spec
    return spec


def captures(op, *aten_names):
    """Decorator: the function translates the aten ops ``aten_names``, on behalf of ``op``."""
    def decorate(translate):
        for name in aten_names:
            if translation(name) is not None:
                raise ValueError(f"aten.{name} is captured twice")
            OPS[op].captures[name] = translate
        return translate
    return decorate


def refuse(why, *aten_names):
    """Refuse the aten ops ``aten_names`` (no op captures them), saying ``why``."""
    REFUSED.update(dict.fromkeys(aten_names, why))


def translation(aten_name):
    """The translation of ``aten_name``, or None if no op captures it."""
    for spec in OPS.values():
        if aten_name in spec.captures:
            return spec.captures[aten_name]
    return None


def refusal(aten_name):
    """Why ``aten_name`` has no hardware, or None if that is not known."""
    for spec in OPS.values():
        if aten_name in spec.refusals:
            return spec.refusals[aten_name]
    return REFUSED.get(aten_name)


def captured():
    """The names of every aten op some op captures."""
    return {name for spec in OPS.values() for name in spec.captures}


def computed_alone(core, arguments, ports=("a",)):
    """The lowering of an op whose core computes each node on its own: the core class ``core`` (or
    its dotted path), built with ``arguments(node, formats, target, lanes)``, the ``(args, kwargs)``
    of ``core(*args, **kwargs)``, with input ports ``ports`` (or ``ports(node)``) and output ``o``."""
    def lowering(node, formats, target, lanes):
        from cores.model import Blueprint

        args, kwargs = arguments(node, formats, target, lanes)
        blueprint = Blueprint(core_class(core) if isinstance(core, str) else core, args, kwargs)
        inputs = ports(node) if callable(ports) else ports
        return Lowered(blueprint, {node: Endpoint(inputs, "o", blueprint.model)})
    return lowering


def pipelined(target):
    """The keywords of an element-wise core without a product: the pipeline registers it needs at
    the design's clock (its rounding in a stage of its own, where it rounds)."""
    return {"pipelining": target.pipelining}


def multiplying(target):
    """The keywords of a core that multiplies: the device's DSP multiplier, which its products are
    split for, and the pipeline registers it needs at the design's clock."""
    return {"dsp_shape": target.multiplier, **pipelined(target)}


def _scale(node):
    return node.attrs.get("scale", 1.0)


def nonlinear(name, function, core, *, bound=None, aten_names=None, refusals=None):
    """Register ``name(a) = function(scale * a)``, computed by ``core(in_format, out_format, scale=)``
    (a class or its dotted path); it captures the aten ops ``aten_names`` (default: the op of the
    same name) applied to one tensor."""
    def arguments(node, formats, target, lanes):
        return (formats[node.inputs[0]], formats[node]), {"scale": _scale(node), "lanes": lanes, **multiplying(target)}

    spec = register(OpSpec(name, semantics=lambda node, args: function(args[0] * _scale(node)), core=core,
                           lowering=computed_alone(core, arguments), bound=bound, scaled=True,
                           refusals=refusals or {}))
    captures(name, *((name,) if aten_names is None else aten_names))(
        lambda tr, target, args, kwargs: tr.nonlinear(name, args[0]))
    return spec


# Inputs, arithmetic and matmuls -------------------------------------------------------------
def _pacer(node, formats, target, lanes):
    # The pacer admits a group of samples per period, no faster than it can collect and send one.
    pacer = core_class("cores.pacer.Pacer")
    return (formats[node], node.numel, max(target.period, pacer.min_period(node.numel, lanes))), {"lanes": lanes}


register(OpSpec("input", core="cores.pacer.Pacer", lowering=computed_alone("cores.pacer.Pacer", _pacer, ports=("i",))))


def _binary(name, function, core, commutative=False, multiplies=False):
    def arguments(node, formats, target, lanes):
        return (formats[node.inputs[0]], formats[node.inputs[1]], formats[node]), \
            {"lanes": lanes, **(multiplying if multiplies else pipelined)(target)}

    register(OpSpec(name, semantics=lambda node, args: function(args[0], args[1]), core=core,
                    lowering=computed_alone(core, arguments, ports=("a", "b")), commutative=commutative))


_binary("add", np.add, "cores.elementwise.Add", commutative=True)
_binary("sub", np.subtract, "cores.elementwise.Sub")
_binary("mul", np.multiply, "cores.elementwise.Mul", commutative=True, multiplies=True)
register(OpSpec("neg", semantics=lambda node, args: -args[0], core="cores.elementwise.Neg",
                lowering=computed_alone("cores.elementwise.Neg", lambda node, formats, target, lanes: (
                    (formats[node.inputs[0]], formats[node]), {"lanes": lanes, **pipelined(target)}))))
register(OpSpec("scale", semantics=lambda node, args: args[0] * node.attrs["value"], core="cores.elementwise.Scale",
                lowering=computed_alone("cores.elementwise.Scale", lambda node, formats, target, lanes: (
                    (formats[node.inputs[0]], formats[node], node.attrs["value"]),
                    {"lanes": lanes, **multiplying(target)}))))


def constant_values(node):
    """The values of an ``add_const`` or ``mul_const``: its array, or a stored tensor's
    (:class:`~inrarch.ir.Weight`, runtime weights) current values."""
    values = node.attrs["values"]
    return getattr(values, "matrix", values)


def _constants(multiplies):
    def arguments(node, formats, target, lanes):
        values = constant_values(node).reshape(-1)
        kwargs = {"lanes": lanes, **(multiplying if multiplies else pipelined)(target)}
        if multiplies:
            kwargs["const_width"] = formats.weight_width(node)
        if "bound" in node.meta:
            # A loaded vector (runtime weights, inrarch.weights): its core gives every lane the
            # beat's element.
            return (formats[node.inputs[0]], formats[node], values), {**kwargs, "bound": node.meta["bound"]}
        # The core's lanes hold consecutive elements of one constant vector; with a sample in every
        # lane, each beat meets the same element in all of them.
        return (formats[node.inputs[0]], formats[node], np.repeat(values, lanes)), kwargs
    return arguments


register(OpSpec("add_const", semantics=lambda node, args: args[0] + constant_values(node),
                core="cores.elementwise.AddConst", lowering=computed_alone("cores.elementwise.AddConst", _constants(False))))
register(OpSpec("mul_const", semantics=lambda node, args: args[0] * constant_values(node),
                core="cores.elementwise.MulConst", lowering=computed_alone("cores.elementwise.MulConst", _constants(True)),
                refusals={"reciprocal": "division by a streamed value is not supported"}))


def _matmul(node, args):
    w = node.attrs["weight"].matrix
    return args[0] @ (w if node.attrs["transposed"] else w.T)


def _matmul_sizes(node):
    """``(vectors, n_in, n_out)`` of a matmul node: vectors per sample, and each one's lengths."""
    n_in, n_out = node.inputs[0].shape[-1], node.shape[-1]
    return node.numel // n_out, n_in, n_out


def _weight_group(node):
    """The matmuls that share ``node``'s core, in channel order: the pair on one stored matrix
    (:func:`inrarch.passes.pair_shared_weights`), or the node alone."""
    return node.meta.get("weight_pair", (node,))


def _matmul_parallel(node, target):
    """Multipliers per lane of the core of ``node``'s group: the most its nodes were given, at most
    the matrix's smaller side."""
    group = _weight_group(node)
    return min(max(target.parallel.get(n, 1) for n in group), *group[0].attrs["weight"].matrix.shape)


def _lower_matmul(node, formats, target, lanes):
    """One :class:`~cores.matmul.MatVec` for the group of ``node``, a channel per matmul."""
    from cores.model import Blueprint

    group = _weight_group(node)
    first = group[0]
    blueprint = Blueprint(core_class("cores.matmul.MatVec"),
                          (first.attrs["weight"].matrix, formats[first.inputs[0]], formats[first]),
                          {"channels": tuple("transpose" if n.attrs["transposed"] else "forward" for n in group),
                           "parallel": _matmul_parallel(node, target), "lanes": lanes,
                           "weight_width": max(formats.weight_width(n) for n in group),
                           "weight_bound": first.meta.get("bound"), **multiplying(target)})
    channels = [blueprint.model.channel(k) for k in range(len(group))]
    return Lowered(blueprint, {n: Endpoint(channel.inputs, channel.output, channel) for n, channel in zip(group, channels)})


def _matmul_cycles(node, parallel):
    return core_class("cores.matmul.MatVec").cycles_per_sample(*_matmul_sizes(node), parallel)


def _matmul_dsps(node, formats, target):
    return _matmul_parallel(node, target) * target.device.dsps(formats[node.inputs[0]].width, formats.weight_width(node))


register(OpSpec("matmul", semantics=_matmul, core="cores.matmul.MatVec", lowering=_lower_matmul,
                fold=Fold(cycles=_matmul_cycles, limit=lambda node: min(_matmul_sizes(node)[1:]), dsps=_matmul_dsps,
                          macs=lambda node: node.numel * node.inputs[0].shape[-1])))


def _sum(node, args):
    batch = args[0].shape[0]
    return args[0].reshape(batch, -1, node.attrs["group"]).sum(axis=-1).reshape(batch, *node.shape)


def _lower_sum(node, formats, target, lanes):
    # Sum adds its lanes together; with a sample in every lane each lane is summed on its own.
    core = "cores.reduce.Sum" if lanes == 1 else "cores.reduce.Accumulate"
    return computed_alone(core, lambda node, formats, target, lanes: (
        (formats[node.inputs[0]], formats[node], node.attrs["group"]), {"lanes": lanes}))(node, formats, target, lanes)


register(OpSpec("sum", semantics=_sum, core="cores.reduce.Sum", lowering=_lower_sum))


def _gather_table(node):
    """Constants of a gather and flat indices into (inputs..., constants) for its entries."""
    offsets = np.cumsum([0] + [source.numel for source in node.inputs])
    constants = sorted({entry for entry in node.attrs["entries"] if isinstance(entry, float)})
    slot = {value: offsets[-1] + k for k, value in enumerate(constants)}
    index = np.array([slot[e] if isinstance(e, float) else offsets[e[0]] + e[1] for e in node.attrs["entries"]],
                     dtype=np.int64)
    return np.array(constants, dtype=np.float64), index


def _gather(node, args):
    batch = args[0].shape[0]
    table, index = _gather_table(node)
    flat = np.concatenate([a.reshape(batch, -1) for a in args] + [np.broadcast_to(table, (batch, len(table)))], axis=1)
    return flat[:, index].reshape(batch, *node.shape)


register(OpSpec("gather", semantics=_gather, core="cores.plumbing.Gather",
                lowering=computed_alone("cores.plumbing.Gather", lambda node, formats, target, lanes: (
                    ([(formats[source], source.numel) for source in node.inputs], formats[node], node.attrs["entries"]),
                    {"lanes": lanes}), ports=lambda node: tuple(f"i{k}" for k in range(len(node.inputs))))))

# Nonlinear functions ------------------------------------------------------------------------
nonlinear("sin", np.sin, "cores.nonlinear.Sin", bound=1.0)
nonlinear("cos", np.cos, "cores.nonlinear.Cos", bound=1.0)
nonlinear("tanh", np.tanh, "cores.nonlinear.Tanh", bound=1.0)
nonlinear("sigmoid", lambda v: 1.0 / (1.0 + np.exp(-v)), "cores.nonlinear.Sigmoid", bound=1.0)
nonlinear("exp", np.exp, "cores.nonlinear.Exp")
nonlinear("relu", lambda v: np.maximum(v, 0.0), "cores.nonlinear.Relu")
nonlinear("step", lambda v: (v > 0).astype(np.float64), "cores.nonlinear.Step", bound=1.0, aten_names=())
nonlinear("softplus", lambda v: np.logaddexp(0.0, v), "cores.nonlinear.Softplus", aten_names=())
nonlinear("abs", np.abs, "cores.nonlinear.Abs")
nonlinear("sqrt", lambda v: np.sqrt(np.maximum(v, 0.0)), "cores.nonlinear.Sqrt", refusals={
    "rsqrt": "there is no reciprocal square-root core (a derivative of sqrt needs one)",
    "norm": "use torch.linalg.vector_norm (the 2-norm is supported)",
    "eq": "equality tests of streamed values are not supported (torch writes the derivative of a norm with "
          "one, and that derivative also divides by the norm)",
})

# Translations -------------------------------------------------------------------------------
_DATA_MOVEMENT = (
    "view", "view_copy", "_unsafe_view", "reshape", "expand", "expand_copy", "permute", "permute_copy",
    "t", "t_copy", "transpose", "transpose_copy", "unsqueeze", "unsqueeze_copy", "squeeze", "squeeze_copy",
    "select", "select_copy", "slice", "slice_copy", "cat", "stack", "alias", "alias_copy", "clone",
    "_to_copy", "lift_fresh_copy", "detach", "detach_copy", "contiguous", "select_scatter", "slice_scatter",
    "diagonal", "diagonal_copy", "diagonal_scatter", "select_backward", "slice_backward",
    "split_with_sizes", "split_with_sizes_copy", "split", "split_copy", "unbind", "unbind_copy",
    "flatten", "unflatten", "movedim", "narrow", "narrow_copy", "repeat", "index_select",
)


@captures("gather", *_DATA_MOVEMENT)
def _data_movement(tr, target, args, kwargs):
    return tr.move(target, args, kwargs)


def _operand(tr, value):
    return value if isinstance(value, torch.Tensor) or tr.streamed(value) else tr.constant(value)


def _arithmetic(name, tr, target, args, kwargs):
    return tr.binary(name, args[0], _operand(tr, args[1]), alpha=kwargs.get("alpha", 1))


for _name, _op in (("add", "add"), ("sub", "sub"), ("mul", "mul"), ("div", "mul_const")):
    captures(_op, _name)(functools.partial(_arithmetic, _name))


@captures("sub", "rsub")
def _rsub(tr, target, args, kwargs):
    return tr.binary("sub", _operand(tr, args[1]), args[0])


@captures("neg", "neg")
def _neg(tr, target, args, kwargs):
    return tr.unary_neg(args[0])


@captures("mul", "pow")
def _pow(tr, target, args, kwargs):
    base, exponent = args[0], args[1]
    if isinstance(exponent, (int, float)) and exponent == 0:
        return torch.ones(base.shape, dtype=torch.float64)
    if isinstance(exponent, (int, float)) and float(exponent).is_integer() and 1 <= exponent <= 8:
        result = base
        for _ in range(int(exponent) - 1):
            result = tr.binary("mul", result, base)
        return result
    raise CompileError(f"pow with exponent {exponent!r} at {tr.source} is not supported; only integer powers 0..8 are")


@captures("matmul", "mm")
def _mm(tr, target, args, kwargs):
    return tr.matmul("matmul", args[0], args[1])


@captures("matmul", "bmm")
def _bmm(tr, target, args, kwargs):
    return tr.batched_matmul("matmul", args[0], args[1])


@captures("matmul", "mv")
def _mv(tr, target, args, kwargs):
    matrix, vector = args
    column = tr.structural(aten.unsqueeze.default, [vector, 1], {}) if tr.streamed(vector) else vector[:, None]
    product = tr.matmul("matmul", matrix, column)
    return tr.structural(aten.squeeze.dim, [product, 1], {}) if tr.streamed(product) else product[:, 0]


@captures("matmul", "addmm")
def _addmm(tr, target, args, kwargs):
    alpha, beta = kwargs.get("alpha", 1), kwargs.get("beta", 1)
    product = tr.matmul("matmul", args[1], args[2])
    product = tr.binary("mul", product, tr.constant(alpha)) if alpha != 1 else product
    bias = args[0] if beta == 1 else tr.binary("mul", args[0], tr.constant(beta))
    return tr.binary("add", product, bias)


@captures("sum", "dot")
def _dot(tr, target, args, kwargs):
    return tr.reduce_sum(tr.binary("mul", args[0], args[1]))


@captures("sum", "sum")
def _sum_call(tr, target, args, kwargs):
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    return tr.reduce_sum(args[0], dims, kwargs.get("keepdim", args[2] if len(args) > 2 else False))


@captures("exp", "expm1")
def _expm1(tr, target, args, kwargs):
    return tr.binary("add", tr.nonlinear("exp", args[0]), tr.constant(-1.0))


@captures("tanh", "tanh_backward")
def _tanh_backward(tr, target, args, kwargs):
    grad, y = args
    one_minus = tr.binary("add", tr.unary_neg(tr.binary("mul", y, y)), tr.constant(1.0))
    return tr.binary("mul", grad, one_minus)


@captures("sigmoid", "sigmoid_backward")
def _sigmoid_backward(tr, target, args, kwargs):
    grad, y = args
    slope = tr.binary("mul", y, tr.binary("add", tr.unary_neg(y), tr.constant(1.0)))
    return tr.binary("mul", grad, slope)


@captures("softplus", "softplus")
def _softplus(tr, target, args, kwargs):
    x, beta = args[0], float(args[1]) if len(args) > 1 else 1.0
    # Past torch's threshold softplus is x itself; the core's table gives that to within an ulp.
    value = tr.nonlinear("softplus", x, scale=beta)
    return value if beta == 1.0 else tr.binary("mul", value, tr.constant(1.0 / beta))


@captures("softplus", "softplus_backward")
def _softplus_backward(tr, target, args, kwargs):
    grad, x, beta = args[0], args[1], float(args[2])
    return tr.binary("mul", grad, tr.nonlinear("sigmoid", x, scale=beta))


@captures("sqrt", "linalg_vector_norm")
def _vector_norm(tr, target, args, kwargs):
    order = args[1] if len(args) > 1 else kwargs.get("ord", 2)
    if order != 2 or kwargs.get("dtype") is not None:
        raise CompileError(f"aten.linalg_vector_norm with ord={order!r} at {tr.source} is not supported; "
                           "only the 2-norm is")
    dim = args[2] if len(args) > 2 else kwargs.get("dim")
    keepdim = args[3] if len(args) > 3 else kwargs.get("keepdim", False)
    squares = tr.reduce_sum(tr.binary("mul", args[0], args[0]), dim, keepdim)
    return tr.nonlinear("sqrt", squares)


@captures("relu", "threshold_backward")
def _threshold_backward(tr, target, args, kwargs):
    grad, y, threshold = args
    if threshold != 0:
        raise CompileError(f"threshold_backward with threshold {threshold} at {tr.source} is not supported")
    return tr.binary("mul", grad, tr.nonlinear("step", y))


def _comparison(name, tr, target, args, kwargs):
    return tr.compare(name, args[0], args[1])


# Comparisons are steps of a difference; relu's derivative is written with them (and ``where``).
for _name in ("gt", "ge", "lt", "le"):
    captures("step", _name)(functools.partial(_comparison, _name))


@captures("step", "where")
def _where(tr, target, args, kwargs):
    return tr.where(*args)


@captures("step", "sign", "sgn")
def _sign(tr, target, args, kwargs):
    # sign(x) = step(x) - step(-x); torch writes the derivative of abs with it.
    return tr.binary("sub", tr.nonlinear("step", args[0]), tr.nonlinear("step", args[0], scale=-1.0))


# Refusals of aten ops no op captures ---------------------------------------------------------
refuse("there is no log core", "log", "log1p", "log_sigmoid_forward")
refuse("there is no clamp core: write clamp(x, lo, hi) as lo + relu(x - lo) - relu(x - hi)", "clamp")
refuse("write clamp(x, min=lo) as lo + relu(x - lo)", "clamp_min")
refuse("write clamp(x, max=hi) as hi - relu(hi - x)", "clamp_max")
refuse("write maximum(a, b) as b + relu(a - b) and minimum(a, b) as a - relu(a - b)", "maximum", "minimum")
refuse("GELU needs erf, or for approximate='tanh' a division in its second derivative: x * torch.sigmoid(1.702 * x) "
       "is its sigmoid approximation, or use SiLU", "gelu")
refuse("normalizing divides by a streamed standard deviation, and there is no reciprocal core: leave the "
       "normalization out (SIREN and PINN MLPs need none)", "native_layer_norm", "native_group_norm")
refuse("softmax divides by a streamed sum, and there is no reciprocal core", "_softmax", "_log_softmax")
refuse("its output shape depends on the data (dynamic shapes are not supported)", "nonzero", "masked_select")
refuse("indexing with a tensor is not supported (boolean masks give data-dependent shapes)", "index")
refuse("data-dependent control flow is not supported: the function reads a tensor's value in Python "
       "(if, bool(), .item())", "_local_scalar_dense")
refuse("complex numbers are not supported", "view_as_complex")
refuse("random values (dropout in train mode) are not supported: call model.eval() first",
       "bernoulli", "native_dropout")

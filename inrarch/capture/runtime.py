"""Runtime weights in capture: the model's parameters and buffers as values of the running design.

With ``weights="runtime"`` the parameters and floating-point buffers of the function's model are
inputs of the trace (:func:`parameters` lists them, :func:`substituted` puts the traced values in
their place), and translation meets them as :class:`RuntimeTensor` values. A runtime tensor holds
what it is for the example model, and for two *probes* (models of random parameters), and every op
on it is recorded in a :class:`WeightProgram`: the function from the model's parameters to the
tensors the hardware stores (matrices, biases, and constant vectors derived from parameters, such
as a first layer's column times ``w0`` in a derivative). The design loads those tensors at run
time; :meth:`WeightProgram.evaluate` computes them for any model of the same shape, and
:meth:`WeightProgram.bounds` bounds them for every model whose parameters stay within given
magnitudes.

Two things are decided from the probes rather than from the example, so that they hold for every
model and not by chance for this one: a value equal at the example and at both probes does not
depend on the parameters and is an ordinary constant (``zeros(2) @ W`` is zero whatever ``W``),
and a Python number read from runtime values (``bool((b == b[:1]).all())``) must be the same at
all three, or capture refuses the function. Two stored tensors are the same when they agree at the
example and at the probes (:attr:`RuntimeTensor.fingerprint`), so two zero-initialized biases stay
two tensors.
"""

import contextlib
import hashlib
import math

import numpy as np
import torch
from torch.utils._pytree import tree_flatten, tree_map

from ..errors import CompileError

__all__ = ["RuntimeTensor", "WeightProgram", "parameters", "substituted", "held_tensor", "PROBES"]

#: Models of random parameters each runtime value is also computed for.
PROBES = 2
_PROBE_SEED = 20231


def parameters(module):
    """``[(name, tensor)]``: the parameters, then the floating-point buffers, of ``module``, named as in
    its ``state_dict`` (a tied parameter once, under its first name)."""
    found = list(module.named_parameters(remove_duplicate=True))
    seen = {id(tensor) for _, tensor in found}
    for name, buffer in module.named_buffers(remove_duplicate=True):
        if buffer.dtype.is_floating_point and id(buffer) not in seen:
            seen.add(id(buffer))
            found.append((name, buffer))
    return found


@contextlib.contextmanager
def substituted(module, names, values):
    """Inside the block, the tensor ``module`` holds under each of ``names`` is the matching one of ``values``."""
    owners = list(module.modules())
    undo = []
    try:
        for name, value in zip(names, values):
            original = held_tensor(module, name)
            # Every module that holds this tensor (a tied parameter has several).
            for owner in owners:
                for table in (owner._parameters, owner._buffers):
                    for key, held in list(table.items()):
                        if held is original:
                            undo.append((table, key, held))
                            table[key] = value
        yield
    finally:
        for table, key, held in reversed(undo):
            table[key] = held


def held_tensor(module, name):
    """The tensor ``module`` holds as parameter or buffer ``name`` (a dotted path)."""
    path, _, attribute = name.rpartition(".")
    owner = module.get_submodule(path)
    if attribute in owner._parameters:
        return owner._parameters[attribute]
    return owner._buffers[attribute]


# The weight program --------------------------------------------------------------------------

def _encode(value, program):
    """An op argument as JSON-able data: runtime values and constants by reference."""
    if isinstance(value, RuntimeTensor):
        return {"value": value.index}
    if isinstance(value, torch.Tensor):
        return {"constant": program.constant(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [_encode(item, program) for item in value]}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"device": "cpu"}
    if isinstance(value, torch.layout):
        return {"layout": str(value).removeprefix("torch.")}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).removeprefix("torch.")}
    raise CompileError(f"a parameter goes through an op argument inrarch cannot record: {type(value).__name__}")


def _decode(data, values, constants):
    if isinstance(data, list):
        return [_decode(item, values, constants) for item in data]
    if not isinstance(data, dict):
        return data
    (kind, item), = data.items()
    if kind == "value":
        return values[item]
    if kind == "constant":
        return constants[item]
    if kind == "float":
        return float(item)
    if kind in ("list", "tuple"):
        decoded = [_decode(element, values, constants) for element in item]
        return decoded if kind == "list" else tuple(decoded)
    if kind == "device":
        return torch.device(item)
    return getattr(torch, item)


def _op_name(func):
    return f"{func._schema.name.removeprefix('aten::')}.{func._overloadname}"


def _resolve(name):
    packet, _, overload = name.rpartition(".")
    return getattr(getattr(torch.ops.aten, packet), overload)


class WeightProgram:
    """The tensors a design stores, as a function of its model's parameters.

    The program is a list of aten ops on the parameters (by name) and on constants; its outputs
    are the stored tensors. It is plain data (:meth:`as_dict`, :meth:`from_dict`), so that a build
    directory can compute the weights of another model without the function it was compiled from.

    Attributes
    ----------
    parameters : list of (str, tuple)
        Name and shape of every parameter and buffer, in the order of the trace.
    outputs : list of int
        The values (parameters first, then one per step) the stored tensors are, in order.
    """

    def __init__(self, parameters=(), constants=(), steps=(), outputs=()):
        self.parameters = [(name, tuple(shape)) for name, shape in parameters]
        self.constants = [torch.as_tensor(c, dtype=torch.float64) if not isinstance(c, torch.Tensor) else c
                          for c in constants]
        self.steps = list(steps)       # {"op": "mul.Tensor", "args": ..., "kwargs": ..., "item": k or None}
        self.outputs = list(outputs)

    @property
    def names(self):
        return [name for name, _ in self.parameters]

    def constant(self, tensor):
        self.constants.append(tensor.detach().to(torch.float64).clone())
        return len(self.constants) - 1

    def record(self, func, args, kwargs, item=None):
        """Add ``func(*args, **kwargs)`` (and its ``item``-th result, for ops with several); return its index."""
        self.steps.append({"op": _op_name(func), "args": _encode(list(args), self)["list"],
                           "kwargs": {key: _encode(value, self) for key, value in kwargs.items()}, "item": item})
        return len(self.parameters) + len(self.steps) - 1

    def select(self, index, item):
        """A step taking result ``item`` of the multi-result value ``index``."""
        self.steps.append({"op": "item", "args": [{"value": index}], "kwargs": {}, "item": item})
        return len(self.parameters) + len(self.steps) - 1

    def pruned(self, outputs):
        """The program of the values ``outputs`` alone: the steps they need, renumbered."""
        first = len(self.parameters)
        needed, stack = set(), list(outputs)
        while stack:
            index = stack.pop()
            if index < first or index in needed:
                continue
            needed.add(index)
            stack.extend(_references(self.steps[index - first], "value"))
        kept = sorted(needed)
        renumber = {index: index for index in range(first)}
        renumber.update({index: first + k for k, index in enumerate(kept)})
        used = sorted({c for index in kept for c in _references(self.steps[index - first], "constant")})
        constant_of = {old: new for new, old in enumerate(used)}
        steps = [_renumbered(self.steps[index - first], renumber, constant_of) for index in kept]
        return WeightProgram(self.parameters, [self.constants[c] for c in used], steps,
                             [renumber[index] for index in outputs])

    def evaluate(self, values):
        """The stored tensors (float64 numpy arrays) for parameter ``values``: a mapping from name to tensor."""
        return [np.asarray(v.numpy(), dtype=np.float64) for v in self._run(values, self._apply)]

    def bounds(self, bounds):
        """The largest magnitude each stored tensor can have while every parameter ``name`` stays
        within ``bounds[name]``: interval arithmetic on element-wise magnitude bounds, exact for data
        movement. Raises :class:`CompileError` for an op it cannot bound."""
        start = {name: torch.full(shape, float(bounds[name]), dtype=torch.float64) for name, shape in self.parameters}
        return [float(b.max()) if b.numel() else 0.0 for b in self._run(start, _bound_step, constants_as=torch.abs)]

    def _run(self, start, apply, constants_as=None):
        values = [torch.as_tensor(start[name], dtype=torch.float64).reshape(shape) for name, shape in self.parameters]
        constants = [constants_as(c) if constants_as else c for c in self.constants]
        for step in self.steps:
            args = _decode(step["args"], values, constants)
            kwargs = {key: _decode(value, values, constants) for key, value in step["kwargs"].items()}
            if step["op"] == "item":
                values.append(args[0][step["item"]])
                continue
            values.append(apply(step["op"], args, kwargs))
        return [values[index] for index in self.outputs]

    @staticmethod
    def _apply(name, args, kwargs):
        return _resolve(name)(*args, **kwargs)

    def as_dict(self):
        return {"parameters": [[name, list(shape)] for name, shape in self.parameters],
                "constants": [{"shape": list(c.shape), "values": c.reshape(-1).tolist()} for c in self.constants],
                "steps": self.steps, "outputs": self.outputs}

    @classmethod
    def from_dict(cls, data):
        constants = [torch.tensor(c["values"], dtype=torch.float64).reshape(c["shape"]) for c in data["constants"]]
        return cls(data["parameters"], constants, data["steps"], data["outputs"])


def _references(data, kind):
    found = []

    def visit(item):
        if isinstance(item, list):
            for element in item:
                visit(element)
        elif isinstance(item, dict):
            for key, value in item.items():
                if key == kind:
                    found.append(value)
                elif key in ("list", "tuple"):
                    visit(value)

    visit([data["args"], list(data["kwargs"].values())])
    return found


def _renumbered(step, values, constants):
    def visit(item):
        if isinstance(item, list):
            return [visit(element) for element in item]
        if isinstance(item, dict):
            (key, value), = item.items()
            if key == "value":
                return {"value": values[value]}
            if key == "constant":
                return {"constant": constants[value]}
            if key in ("list", "tuple"):
                return {key: visit(value)}
        return item

    return {**step, "args": visit(step["args"]), "kwargs": {k: visit(v) for k, v in step["kwargs"].items()}}


# Magnitude bounds: each value is represented by a tensor of its elements' largest magnitudes.
_MOVES = {"t", "transpose", "permute", "view", "_unsafe_view", "reshape", "expand", "unsqueeze", "squeeze",
          "select", "slice", "cat", "stack", "clone", "alias", "detach", "_to_copy", "lift_fresh_copy",
          "contiguous", "flatten", "unflatten", "diagonal", "repeat", "index_select", "narrow", "split",
          "split_with_sizes", "unbind", "movedim", "expand_copy", "permute_copy", "t_copy", "view_copy",
          "select_copy", "slice_copy", "transpose_copy", "unsqueeze_copy", "squeeze_copy", "alias_copy",
          "detach_copy", "zeros_like", "ones_like", "new_zeros"}


def _magnitude(value):
    return torch.abs(value) if isinstance(value, torch.Tensor) else abs(value) if isinstance(value, (int, float)) else value


def _bound_step(name, args, kwargs):
    packet = name.rpartition(".")[0]
    op = _resolve(name)
    if packet in _MOVES:
        return op(*args, **kwargs)
    magnitudes = [_magnitude(a) for a in args]
    if packet in ("neg", "abs", "positive"):
        return magnitudes[0]
    if packet in ("mul", "mm", "matmul", "bmm", "mv", "dot", "outer", "sum"):
        return op(*magnitudes, **kwargs)
    if packet in ("add", "sub", "rsub"):
        alpha = abs(kwargs.get("alpha", 1))
        a, b = magnitudes[:2]
        return (a + alpha * b) if packet != "rsub" else (b + alpha * a)
    if packet == "addmm":
        return magnitudes[0] * abs(kwargs.get("beta", 1)) + abs(kwargs.get("alpha", 1)) * (magnitudes[1] @ magnitudes[2])
    if packet == "div" and not isinstance(args[1], torch.Tensor):
        return magnitudes[0] / abs(args[1])
    if packet in ("sin", "cos", "tanh", "sigmoid"):
        return torch.ones_like(magnitudes[0])
    raise CompileError(f"parameters go through aten.{packet}, which inrarch cannot bound: the stored tensors of "
                       "a runtime-weight design must follow from the parameters by data movement, sums and products")


# Runtime tensors -----------------------------------------------------------------------------

def _unwrap(value, probe):
    if isinstance(value, RuntimeTensor):
        return value.example if probe is None else value.probes[probe]
    return value


def _same(values):
    first = values[0]
    if isinstance(first, torch.Tensor):
        return all(isinstance(v, torch.Tensor) and v.shape == first.shape and torch.equal(v, first) for v in values[1:])
    return all(v == first for v in values[1:])


class RuntimeTensor(torch.Tensor):
    """A value computed from the model's parameters: what it is for the example (``example``) and for
    the :data:`PROBES` probes (``probes``), and its index in the :class:`WeightProgram` that computes it.

    Ops on runtime tensors compute all three and record themselves in the program.
    """

    @staticmethod
    def __new__(cls, example, probes, index, program):
        tensor = torch.Tensor._make_wrapper_subclass(cls, example.shape, strides=example.stride(),
                                                     dtype=example.dtype, device=example.device)
        tensor.example, tensor.probes, tensor.index, tensor.program = example, list(probes), index, program
        return tensor

    def __repr__(self):
        return f"RuntimeTensor(value {self.index}, shape {tuple(self.shape)})"

    @classmethod
    def parameter(cls, program, name, value, seed):
        """The runtime value of parameter ``name`` (its example ``value``) in ``program``."""
        program.parameters.append((name, tuple(value.shape)))
        generator = torch.Generator().manual_seed(seed)
        probes = [torch.randn(value.shape, dtype=torch.float64, generator=generator) for _ in range(PROBES)]
        return cls(value.detach().to(torch.float64), probes, len(program.parameters) - 1, program)

    @property
    def fingerprint(self):
        """A digest of the example's and the probes' values: equal for the same function of the parameters."""
        digest = hashlib.sha256(str(tuple(self.shape)).encode())
        for value in (self.example, *self.probes):
            digest.update(np.ascontiguousarray(value.detach().numpy()).tobytes())
        return digest.hexdigest()

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        program = next(v.program for v in tree_flatten((args, kwargs))[0] if isinstance(v, RuntimeTensor))
        if func._schema.is_mutable:
            raise CompileError(f"aten.{_op_name(func)} changes a value computed from the parameters in place; "
                               "with runtime weights parameters are read, never written")
        results = [func(*tree_map(lambda v: _unwrap(v, probe), args), **tree_map(lambda v: _unwrap(v, probe), kwargs))
                   for probe in (None, *range(PROBES))]
        example = results[0]
        if not isinstance(example, (torch.Tensor, list, tuple)):
            if not _same(results):
                raise CompileError(f"the function reads a value of its parameters in Python (aten.{_op_name(func)}): "
                                   "with runtime weights the computation must not depend on the weights' values")
            return example
        if isinstance(example, torch.Tensor):
            if _same(results):
                return example  # does not depend on the parameters
            return cls(example, results[1:], program.record(func, args, kwargs), program)
        index = program.record(func, args, kwargs)
        return type(example)(
            item if _same([r[k] for r in results]) else
            cls(item, [r[k] for r in results[1:]], program.select(index, k), program)
            for k, item in enumerate(example))

"""Evaluating the user's torch function as inrarch does: in float64, on one thread, and without
changing the user's model.

Most torch models are float32; some are float16 or bfloat16. inrarch captures, calibrates and
checks every function in float64, so the hardware is compared with the exact mathematics of
the model's own weights. Casting the model (``model.double()``) would change the user's object,
so :func:`float64_tensors` instead swaps, for the duration of a block, every floating-point
tensor the function can reach for a float64 copy, and puts the originals back afterwards:

- parameters, buffers and plain tensor attributes of every ``torch.nn.Module`` it reaches;
- tensors held in the function's closure cells and in the globals its code names.

The function is searched through bound methods, ``functools.partial``, ``__wrapped__``,
closures, referenced globals, containers and the attributes of plain objects. Tied parameters
stay tied (one copy per original tensor).
"""

import contextlib
import functools
import types

import torch

from .errors import CompileError

__all__ = ["float64_tensors", "reference", "single_threaded", "flatten", "first_line"]

_SEARCH_DEPTH = 6
# Library code holds no user tensors in its globals; searching them would only cost time.
_LIBRARIES = ("torch", "numpy", "functools", "builtins")


def _is_low_precision(value):
    return (isinstance(value, torch.Tensor) and value.dtype.is_floating_point and value.dtype != torch.float64
            and not value.is_meta)


class _Swaps:
    """Every replacement made, so that each can be undone in reverse order."""

    def __init__(self):
        self.undo = []
        self.copies = {}
        self.modules = []

    def copy(self, tensor):
        """A float64 copy of a floating-point ``tensor``, a plain copy of any other (one per original)."""
        key = id(tensor)
        if key not in self.copies:
            copy = tensor.detach().to(torch.float64) if tensor.dtype.is_floating_point else tensor.detach().clone()
            self.copies[key] = (tensor, copy)
        return self.copies[key][1]

    def module(self, module):
        self.modules.append(module)
        for sub in module.modules():
            for name, value in list(sub._parameters.items()):
                if _is_low_precision(value):
                    self.undo.append((sub._parameters.__setitem__, name, value))
                    sub._parameters[name] = self.copy(value)
            # Every buffer is copied: train-mode layers update theirs in place (BatchNorm's counters).
            for name, value in list(sub._buffers.items()):
                if isinstance(value, torch.Tensor):
                    self.undo.append((sub._buffers.__setitem__, name, value))
                    sub._buffers[name] = self.copy(value)
            for name, value in list(vars(sub).items()):
                if _is_low_precision(value):
                    self.undo.append((functools.partial(object.__setattr__, sub), name, value))
                    object.__setattr__(sub, name, self.copy(value))

    def cell(self, cell):
        value = cell.cell_contents
        self.undo.append((lambda _, old: setattr(cell, "cell_contents", old), None, value))
        cell.cell_contents = self.copy(value)

    def mapping(self, mapping, key):
        self.undo.append((mapping.__setitem__, key, mapping[key]))
        mapping[key] = self.copy(mapping[key])

    def restore(self):
        for setter, name, value in reversed(self.undo):
            setter(name, value)
        self.undo.clear()


def _code_names(code):
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _search(value, swaps, seen, depth):
    if depth > _SEARCH_DEPTH or id(value) in seen or isinstance(value, (str, bytes, int, float, bool, type(None))):
        return
    seen.add(id(value))
    if isinstance(value, torch.nn.Module):
        swaps.module(value)
        return
    if isinstance(value, torch.Tensor) or isinstance(value, types.ModuleType) or isinstance(value, type):
        return
    if isinstance(value, types.MethodType):
        _search(value.__self__, swaps, seen, depth + 1)
        _search(value.__func__, swaps, seen, depth + 1)
        return
    if isinstance(value, functools.partial):
        for item in (value.func, *value.args, *value.keywords.values()):
            _search(item, swaps, seen, depth + 1)
        return
    if isinstance(value, types.FunctionType):
        _search_function(value, swaps, seen, depth, library=(value.__module__ or "").startswith(_LIBRARIES))
        return
    if isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _search(item, swaps, seen, depth + 1)
        return
    if isinstance(value, dict):
        for item in value.values():
            _search(item, swaps, seen, depth + 1)
        return
    wrapped = getattr(value, "__wrapped__", None)
    if wrapped is not None:
        _search(wrapped, swaps, seen, depth + 1)
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict) and not isinstance(value, types.BuiltinFunctionType):
        for name, item in list(attributes.items()):
            if _is_low_precision(item):
                swaps.undo.append((functools.partial(object.__setattr__, value), name, item))
                object.__setattr__(value, name, swaps.copy(item))
            else:
                _search(item, swaps, seen, depth + 1)


def _search_function(fn, swaps, seen, depth, library):
    """Search the closure of ``fn`` (which holds the user's function when ``fn`` is a torch.func
    wrapper such as ``vmap`` or ``jacrev``) and, unless ``fn`` is library code, its globals."""
    for cell in fn.__closure__ or ():
        try:
            content = cell.cell_contents
        except ValueError:  # a cell not yet assigned
            continue
        if _is_low_precision(content):
            swaps.cell(cell)
        else:
            _search(content, swaps, seen, depth + 1)
    names = () if library else sorted(_code_names(fn.__code__))
    for name in names:
        if name not in fn.__globals__:
            continue
        content = fn.__globals__[name]
        if _is_low_precision(content):
            swaps.mapping(fn.__globals__, name)
        else:
            _search(content, swaps, seen, depth + 1)
    wrapped = getattr(fn, "__wrapped__", None)
    if wrapped is not None:
        _search(wrapped, swaps, seen, depth + 1)


@contextlib.contextmanager
def float64_tensors(fn):
    """Inside the block, every floating-point tensor ``fn`` reaches is a float64 copy.

    The user's tensors are put back on exit, whatever happens in the block, so the model is the
    same object with the same parameters, buffers, dtypes and gradients before and after. The
    block receives the ``torch.nn.Module`` objects found.
    """
    swaps = _Swaps()
    try:
        _search(fn, swaps, set(), 0)
        yield list(swaps.modules)
    finally:
        swaps.restore()


def reference(fn, x, weights=None):
    """``fn(x)`` computed in float64, whatever the dtype of the model and of ``x``.

    Returns a list of float64 tensors (one per output of ``fn``), detached from autograd. This is
    what inrarch compares its hardware with. ``weights``, a ``torch.nn.Module`` of the same
    architecture as the model ``fn`` computes with or a ``state_dict`` of one, replaces that
    model's parameters and buffers for the call (a runtime-weight design loaded with ``weights``
    computes this).
    """
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    with float64_tensors(fn) as modules, torch.enable_grad(), single_threaded(), _weights_of(modules, weights):
        try:
            outputs = fn(x.detach().to(torch.float64))
        except RuntimeError as error:
            raise CompileError(f"the function fails in float64: {first_line(error)}") from None
    outputs = [outputs] if isinstance(outputs, torch.Tensor) else list(flatten(outputs))
    return [output.detach().to(torch.float64) for output in outputs]


@contextlib.contextmanager
def _weights_of(modules, weights):
    """Inside the block, the model among ``modules`` computes with ``weights`` (nothing changes for None)."""
    if weights is None:
        yield
        return
    # capture imports this module, and the weights module capture.
    from .capture import one_model, parameters  # noqa: PLC0415
    from .capture.runtime import substituted  # noqa: PLC0415
    from .weights import parameter_values  # noqa: PLC0415

    module = one_model(modules)
    names = [name for name, _ in parameters(module)]
    values = parameter_values(weights, names)
    with substituted(module, names, [torch.from_numpy(values[name]) for name in names]):
        yield


@contextlib.contextmanager
def single_threaded():
    """Run torch on one thread inside the block.

    Tracing and per-sample derivative evaluation run thousands of tiny ops, which torch's
    intra-op threads only slow down with synchronization: tens of milliseconds per op on a
    loaded machine (an order-3 derivative of the default SIREN on 21 points: 15 s on two
    threads, 0.3 s on one).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def flatten(values):
    """The leaves of nested lists and tuples, in order."""
    for value in values:
        if isinstance(value, (list, tuple)):
            yield from flatten(value)
        else:
            yield value


def first_line(error):
    """The first line of an exception's message (its type when the message is empty)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

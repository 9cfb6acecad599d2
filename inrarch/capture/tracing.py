"""Tracing: the user's function of one sample, recorded as an aten graph by ``make_fx``."""

import contextlib
import inspect

import torch
import torch._decomp
from torch.fx.experimental import proxy_tensor
from torch.fx.experimental.proxy_tensor import make_fx
from torch.func import functionalize

from ..errors import CompileError
from ..evaluation import first_line
from .runtime import substituted
from .source import raising_line

__all__ = ["DECOMPOSED", "trace", "functional", "check_signature", "check_input", "check_train_mode"]

aten = torch.ops.aten

# Activations that torch._decomp rewrites into ops that translate while tracing.
DECOMPOSED = {"silu", "silu_backward", "elu", "elu_backward", "leaky_relu", "leaky_relu_backward"}


@contextlib.contextmanager
def _lean_tracing():
    """make_fx keeps a fake copy of every traced value in ``node.meta["val"]``, and for real tensors
    builds a new FakeTensorMode for each one: that is most of the tracing time, and capture never
    reads those copies. Skip them for the duration of one trace."""
    original = proxy_tensor.extract_val

    def extract_val(val, include_real=False):
        if isinstance(val, torch.Tensor) and not proxy_tensor.is_fake(val):
            return None
        return original(val, include_real)

    proxy_tensor.extract_val = extract_val
    try:
        yield
    finally:
        proxy_tensor.extract_val = original


def _decompositions():
    return torch._decomp.get_decompositions([getattr(aten, name) for name in sorted(DECOMPOSED)])


def trace(fn, sample, module=None, parameters=()):
    """``fn`` on ``sample`` as an aten graph; ``parameters`` (``[(name, tensor)]`` of ``module``) are
    inputs of the graph after the sample (runtime weights), else constants of it."""
    names = [name for name, _ in parameters]

    def traced(x, *values):
        with substituted(module, names, values):
            return fn(x)

    try:
        with _lean_tracing():
            if not parameters:
                return make_fx(fn, decomposition_table=_decompositions())(sample)
            return make_fx(traced, decomposition_table=_decompositions())(sample, *(value for _, value in parameters))
    except CompileError:
        raise
    except Exception as error:
        message = first_line(error)
        if "data-dependent" in message or "Data-dependent" in message or "_local_scalar_dense" in message:
            raise CompileError("data-dependent control flow is not supported: the function reads the value of a "
                               "tensor in Python (if, bool(), .item(), a shape that depends on values): "
                               f"{raising_line(error)}") from None
        raise CompileError(f"could not trace the function: {type(error).__name__}: {message}") from None


def functional(graph_module, sample, *values):
    """The graph of ``graph_module`` (inputs ``sample`` and ``values``) without mutations or views."""
    with _lean_tracing():
        pure = make_fx(functionalize(graph_module, remove="mutations_and_views"),
                       decomposition_table=_decompositions())(sample, *values)
    pure.graph.eliminate_dead_code()
    return pure


def check_signature(fn):
    """Refuse a function (or module) that needs more than one tensor argument."""
    try:
        parameters = inspect.signature(fn.forward if isinstance(fn, torch.nn.Module) else fn).parameters.values()
    except (TypeError, ValueError):
        return
    required = [p.name for p in parameters
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    if len(required) > 1:
        raise CompileError(f"the function takes {len(required)} tensors ({', '.join(required)}); only functions of "
                           "one tensor are supported: concatenate the inputs into one (batch, in_features) tensor")


def check_input(example_input):
    if not isinstance(example_input, torch.Tensor):
        raise CompileError(f"the example input must be a torch.Tensor, not {type(example_input).__name__}")
    if example_input.dtype.is_complex or not example_input.dtype.is_floating_point:
        raise CompileError(f"unsupported input dtype {example_input.dtype}: inputs must be real floating-point numbers")


# Layers whose train mode does not compute each sample on its own, deterministically.
_TRAIN_MODE_LAYERS = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._BatchNorm,
                      torch.nn.modules.instancenorm._InstanceNorm)


def check_train_mode(modules):
    for module in modules:
        for name, layer in module.named_modules():
            if layer.training and isinstance(layer, _TRAIN_MODE_LAYERS):
                kind = type(layer).__name__
                why = ("is random" if isinstance(layer, torch.nn.modules.dropout._DropoutNd)
                       else "normalizes with statistics of the whole batch")
                raise CompileError(f"the model is in train mode, where its {kind} layer {name or '(the model)'!r} {why}: "
                                   "call model.eval() before compiling")


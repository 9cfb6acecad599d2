"""Capture: a torch function of one tensor → inrarch IR for one sample.

The function is traced with ``make_fx`` on a single sample (batch 1), which records every aten op
that torch autograd and torch.func run, backward passes included. The aten graph is then translated
op by op, in order; constants are real tensors, so in-place ops on them (``tangent[..., i] = 1``)
simply run. Only when an in-place op touches a streamed tensor is the graph traced a second time
through ``functionalize``, which replaces mutations and views by pure ops. Translation:

* anything that does not depend on the input is evaluated right away and becomes a constant;
* data-movement ops (views, reshapes, transposes, slices, cat/stack, scatters of constants) on
  streamed tensors become ``gather`` nodes, found by running the op on tensors of element indices;
* matmuls against constants become ``matmul`` nodes that share one stored matrix for W and Wᵀ;
* arithmetic with constants folds in (``x * 0`` vanishes, ``x * c`` becomes ``scale``, ...);
* comparisons with zero become ``step`` nodes and ``where`` a blend by them (relu's derivatives);
  silu, elu and leaky_relu are decomposed by ``torch._decomp`` while tracing.

Anything else raises :class:`CompileError` with the aten op, why it has no hardware where that is
known (``log``: no log core; derivatives of ``sqrt``: no reciprocal), and the user's source line
as ``file:line: code``.

:mod:`.tracing` runs ``make_fx``, :mod:`.translation` turns the aten graph into IR through the
translations that :mod:`inrarch.ops` registers, and :mod:`.source` finds the user's source lines.
"""

import torch

from ..errors import CompileError
from ..evaluation import float64_tensors, single_threaded
from .runtime import WeightProgram, parameters
from .source import occurrences, source_line
from .tracing import check_input, check_signature, check_train_mode, functional, trace
from .translation import NeedsPureGraph, first_unsupported, supported, translate, unsupported_message

__all__ = ["capture", "check_signature", "supported", "model_of", "one_model", "parameters", "WeightProgram"]


def capture(fn, example_input, *, runtime_weights=False):
    """Trace ``fn`` on one sample of ``example_input`` and translate it to an :class:`ir.Graph`.

    Returns the graph and whether ``fn`` returns a single tensor (rather than a list or tuple).
    Raises :class:`CompileError` naming the op and the user's source line for anything the
    hardware cannot compute.

    With ``runtime_weights`` the parameters and floating-point buffers of the model ``fn`` uses
    (:func:`model_of`) are values of the running design, not constants: the graph's stored tensors
    are then computed from them by ``graph.program`` (:mod:`.runtime`), and Python numbers, such as
    a SIREN's ``w0``, stay part of the structure.
    """
    check_signature(fn)
    check_input(example_input)
    with single_threaded(), float64_tensors(fn) as modules:
        check_train_mode(modules)
        module = one_model(modules) if runtime_weights else None
        found = parameters(module) if runtime_weights else ()
        return _capture(fn, example_input[:1].detach().to(torch.float64).clone(), module, found)


def model_of(fn):
    """The one ``torch.nn.Module`` whose parameters ``fn`` computes with (found as
    :func:`inrarch.evaluation.float64_tensors` finds it); :class:`CompileError` if there is none or several."""
    with float64_tensors(fn) as modules:
        pass
    return one_model(modules)


def one_model(modules):
    """The one module of ``modules`` (the models a function reaches), or :class:`CompileError`."""
    if not modules:
        raise CompileError("runtime weights need a model: the function reaches no torch.nn.Module whose parameters "
                           "could be loaded")
    if len(modules) > 1:
        names = ", ".join(type(module).__name__ for module in modules)
        raise CompileError(f"runtime weights need the parameters in one torch.nn.Module, and the function reaches "
                           f"{len(modules)} ({names}): hold them in one module (an nn.ModuleDict, for example)")
    return modules[0]


def _capture(fn, sample, module=None, found=()):
    traced = trace(fn, sample, module, found)
    occurrence = occurrences(traced.graph)
    fx_node, name = first_unsupported(traced.graph)
    if fx_node is not None:
        raise CompileError(unsupported_message(name, source_line(fn, sample, fx_node.target, occurrence[fx_node])))
    traced.graph.eliminate_dead_code()
    try:
        return translate(traced, fn, sample, occurrence, found)
    except NeedsPureGraph:
        return translate(functional(traced, sample, *(value for _, value in found)), fn, sample, None, found)


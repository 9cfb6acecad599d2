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
from .source import occurrences, source_line
from .tracing import check_input, check_signature, check_train_mode, functional, trace
from .translation import NeedsPureGraph, first_unsupported, supported, translate, unsupported_message

__all__ = ["capture", "check_signature", "supported"]


def capture(fn, example_input):
    """Trace ``fn`` on one sample of ``example_input`` and translate it to an :class:`ir.Graph`.

    Returns the graph and whether ``fn`` returns a single tensor (rather than a list or tuple).
    Raises :class:`CompileError` naming the op and the user's source line for anything the
    hardware cannot compute.
    """
    check_signature(fn)
    check_input(example_input)
    with single_threaded(), float64_tensors(fn) as modules:
        check_train_mode(modules)
        return _capture(fn, example_input[:1].detach().to(torch.float64).clone())


def _capture(fn, sample):
    traced = trace(fn, sample)
    occurrence = occurrences(traced.graph)
    fx_node, name = first_unsupported(traced.graph)
    if fx_node is not None:
        raise CompileError(unsupported_message(name, source_line(fn, sample, fx_node.target, occurrence[fx_node])))
    traced.graph.eliminate_dead_code()
    try:
        return translate(traced, fn, sample, occurrence)
    except NeedsPureGraph:
        return translate(functional(traced, sample), fn, sample, None)


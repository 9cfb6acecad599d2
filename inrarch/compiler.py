"""``inrarch.compile``: the compiler's pipeline, from a torch function to a :class:`~inrarch.Design`.

capture → IR passes → number formats → lowering to cores → latency solver (FIFO depths).
"""

import time

import numpy as np
import torch

from . import ir
from .capture import capture, model_of
from .design import Design
from .errors import CompileError
from .evaluation import reference
from .formats import assign_formats, calibration_inputs, search_formats, weight_set
from .lower import lower
from .options import CompileOptions
from .passes import optimize
from .schedule import solve
from .weights import DEFAULT_HEADROOM, WeightError, WeightFamily, check_values, parameter_values

__all__ = ["compile"]


def _check_example(example_input):
    if not isinstance(example_input, torch.Tensor):
        raise CompileError(f"example_input must be a torch.Tensor, not {type(example_input).__name__}")
    if example_input.dtype.is_complex or not example_input.dtype.is_floating_point:
        raise CompileError(f"example_input must hold real floating-point numbers, not {example_input.dtype}")
    if example_input.dim() < 2 or example_input.shape[0] < 1:
        raise CompileError(f"example_input must have shape (batch, in_features), not {tuple(example_input.shape)}")


def _check_per_sample(fn, graph, example_input, domain, tolerance=1e-9):
    """The captured per-sample graph must reproduce ``fn`` on points across the domain."""
    points = calibration_inputs(tuple(example_input.shape[1:]), domain, samples=16, seed=1)
    expected = reference(fn, torch.tensor(points, dtype=torch.float64))
    values = ir.evaluate(graph, points.reshape(len(points), *graph.input.shape))
    shapes = []
    for node, ref in zip(graph.outputs, expected):
        ref = ref.detach().numpy()
        if ref.shape[0] != len(points):
            raise CompileError(f"output of shape {tuple(ref.shape)} has no leading batch axis")
        got = values[node].reshape(ref.shape)
        scale = max(1.0, float(np.max(np.abs(ref))))
        if not np.allclose(got, ref, rtol=0, atol=tolerance * scale):
            raise CompileError("the function does not compute each sample on its own the same way at every input: "
                               "it mixes samples across the batch or has data-dependent control flow")
        shapes.append(tuple(ref.shape[1:]))
    if len(expected) != len(graph.outputs):
        raise CompileError("the function returned a different number of outputs on another batch")
    return shapes


def compile(fn, example_input, options=None, *, progress=False, **keywords):
    """Compile ``fn`` (a function of one ``(batch, in)`` tensor) to a streaming :class:`Design`.

    Parameters
    ----------
    fn : callable
        Returns a tensor or a list/tuple of tensors, each with the batch on axis 0, built with
        torch autograd or torch.func (``inrarch.derivatives`` builds such a function).
    example_input : torch.Tensor
        Shape ``(batch, in_features)``; its batch is the one the report's cycles are for.
    options : CompileOptions, optional
        How to compile (:class:`inrarch.CompileOptions`: formats, tolerance, domain, clock, DSP
        budget, lanes, device).
    progress : bool
        Show the format search's progress on stderr.
    **keywords
        Fields of :class:`inrarch.CompileOptions`, each replacing the one of ``options``:
        ``compile(fn, x, tolerance=1e-2, lanes=2)``.
    """
    options = (options or CompileOptions()).replace(**keywords) if keywords else options or CompileOptions()
    _check_example(example_input)
    options.domain_ranges(int(np.prod(example_input.shape[1:])))  # one range per input, if per input
    domain = options.domain
    timings = {}
    start = time.perf_counter()

    def lap(stage):
        nonlocal start
        now = time.perf_counter()
        timings[f"{stage}_seconds"] = now - start
        start = now

    runtime = options.weights == "runtime"
    graph, single = capture(fn, example_input, runtime_weights=runtime)
    lap("capture")
    graph = optimize(graph)
    output_shapes = _check_per_sample(fn, graph, example_input, domain)
    family, weight_sets, example = _weight_family(fn, graph, options) if runtime else (None, None, None)
    lap("passes")
    device = options.device
    if options.format is None and options.width is None:
        formats = search_formats(graph, tolerance=options.tolerance, margin=options.margin, domain=domain,
                                 weight_widths=device.weight_widths, weight_sets=weight_sets, progress=progress)
    else:
        formats = assign_formats(graph, width=options.width, margin=options.margin, domain=domain,
                                 forced=options.format, weight_widths=device.weight_widths, weight_sets=weight_sets)
    lap("formats")
    netlist = lower(graph, formats, device=device, dsp_budget=options.budget, max_parallel=options.max_parallel,
                    batch=example_input.shape[0], lanes=options.lanes, clock_mhz=options.clock_mhz)
    lap("lower")
    schedule = solve(netlist, example_input.shape[0])
    lap("solve")
    return Design(graph, netlist, schedule, output_shapes, single, options, timings,
                  output_meanings=_output_meanings(fn, len(output_shapes), single), family=family,
                  example_weights=example)


def _weight_family(fn, graph, options):
    """The family of a runtime-weight compile (:mod:`inrarch.weights`): the compiled model and the
    ``weight_examples``, within ``weight_bounds``. Gives each node that reads a stored tensor
    ``meta["bound"]``, the largest magnitude that tensor takes in the family, and returns the
    family, the stored tensors of each example (:func:`inrarch.formats.weight_set`) and the
    compiled model's parameters."""
    program = graph.program
    names = program.names
    examples = [parameter_values(model_of(fn), names)]
    for index, example in enumerate(options.weight_examples):
        try:
            examples.append(parameter_values(example, names))
            check_values(program.parameters, examples[-1])
        except WeightError as error:
            raise CompileError(f"weight_examples[{index}]: {error}") from None
    try:
        family = WeightFamily.describe(program.parameters, examples, dict(options.weight_bounds), DEFAULT_HEADROOM)
    except WeightError as error:
        raise CompileError(str(error)) from None
    bounds = program.bounds(family.bounds)
    for node in graph.nodes:
        stored = node.attrs.get("weight", node.attrs.get("values"))
        if isinstance(stored, ir.Weight) and stored.runtime is not None:
            node.meta["bound"] = bounds[stored.runtime]
    return family, [weight_set(graph, program.evaluate(example)) for example in examples], examples[0]


def _output_meanings(fn, count, single):
    """What each output is: the function's own ``output_meanings`` (``inrarch.derivatives`` sets them:
    value, gradient, Hessian, ...), else ``name(x)`` or ``name(x)[k]``."""
    meanings = getattr(fn, "output_meanings", None)
    if meanings is not None and len(meanings) == count:
        return list(meanings)
    name = getattr(fn, "__name__", type(fn).__name__)
    return [f"{name}(x)"] if single else [f"{name}(x)[{k}]" for k in range(count)]

"""``inrarch.compile``: the compiler's pipeline, from a torch function to a :class:`~inrarch.Design`.

capture → IR passes → number formats → lowering to cores → latency solver (FIFO depths).
"""

import time

import numpy as np
import torch

from cores.fixed import Q
from devices import ULTRASCALE_PLUS

from . import ir
from .capture import capture
from .design import Design
from .errors import CompileError
from .evaluation import reference
from .formats import assign_formats, calibration_inputs, search_formats
from .lower import lower
from .passes import optimize
from .schedule import solve

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


def compile(fn, example_input, *, format=None, width=None, tolerance=1e-3, margin=2.0, domain=(-1.0, 1.0),
            clock_mhz=300.0, max_parallel=None, dsp_budget=None, lanes=None, device=ULTRASCALE_PLUS, progress=False):
    """Compile ``fn`` (a function of one ``(batch, in)`` tensor) to a streaming :class:`Design`.

    Parameters
    ----------
    fn : callable
        Returns a tensor or a list/tuple of tensors, each with the batch on axis 0, built with
        torch autograd or torch.func (``inrarch.derivatives`` builds such a function).
    example_input : torch.Tensor
        Shape ``(batch, in_features)``; its batch is the one the report's cycles are for.
    format : str or Q, optional
        Force one number format (``"q16.16"``) on every edge instead of range analysis.
    width : int, optional
        Give every edge this many bits (over its calibrated range) instead of searching for the
        fewest bits per edge that meet ``tolerance``.
    tolerance : float
        Error the format search allows each output, as a fraction of its largest magnitude; the
        search aims at a quarter of it on calibration inputs (see :mod:`inrarch.formats`).
    margin : float
        Safety factor on calibrated magnitudes.
    domain : (float, float)
        Range of every input element the formats are derived for.
    clock_mhz : float
        Clock the report's latency is given at, and that the cores' optional pipeline registers
        are chosen for (:meth:`devices.Device.pipelining`; the report's ``"pipelining"``).
    max_parallel : int, optional
        Cap on the multipliers of any one matmul.
    dsp_budget : int, optional
        Estimated DSP slices the design may use. The compiler fills it: it picks the number of
        sample lanes and the multipliers of every matmul that finish the example's batch soonest
        within it (:func:`inrarch.lower.choose_lanes`). By default the device's usable DSPs when
        it states a capacity (a board's device does), else no limit.
    lanes : int, optional
        Samples the design computes at once, one per lane of every stream inside it, instead of
        the number the budget gives (one without a budget). The design then takes samples in
        whole groups of ``lanes``: a batch is padded up to the next group.
    device : devices.Device
        The FPGA the design is for: its DSP multipliers decide the matmul weight widths and how
        products are split, its memory rule the report's FIFO memories. UltraScale+ by default
        (the Alveo U280's); ``boards.board_device(board)`` gives a board's.
    progress : bool
        Show the format search's progress on stderr.
    """
    _check_example(example_input)
    if dsp_budget is None and device.usable is not None:
        dsp_budget = device.usable["DSP"]
    if format is not None:
        try:
            format = Q.parse(format)
        except ValueError as error:
            raise CompileError(str(error)) from None
    timings = {}
    start = time.perf_counter()

    def lap(stage):
        nonlocal start
        now = time.perf_counter()
        timings[f"{stage}_seconds"] = now - start
        start = now

    graph, single = capture(fn, example_input)
    lap("capture")
    graph = optimize(graph)
    output_shapes = _check_per_sample(fn, graph, example_input, domain)
    lap("passes")
    if format is None and width is None:
        formats = search_formats(graph, tolerance=tolerance, margin=margin, domain=domain,
                                 weight_widths=device.weight_widths, progress=progress)
    else:
        formats = assign_formats(graph, width=width, margin=margin, domain=domain, forced=format,
                                 weight_widths=device.weight_widths)
    lap("formats")
    netlist = lower(graph, formats, device=device, dsp_budget=dsp_budget, max_parallel=max_parallel,
                    batch=example_input.shape[0], lanes=lanes, clock_mhz=clock_mhz)
    lap("lower")
    schedule = solve(netlist, example_input.shape[0])
    lap("solve")
    options = {"format": str(format) if format else None, "width": width, "tolerance": tolerance,
               "format_search": formats.search.as_dict() if formats.search else None, "margin": margin,
               "domain": tuple(domain), "clock_mhz": clock_mhz, "max_parallel": max_parallel,
               "dsp_budget": dsp_budget, "lanes": netlist.lanes, "device": device,
               "pipelining": device.pipelining(clock_mhz)}
    return Design(graph, netlist, schedule, output_shapes, single, options, timings)

"""``inrarch.compile``: from a torch function to a :class:`Design` (Verilog, report, simulation)."""

import time
from dataclasses import dataclass

import numpy as np
import torch

from cores import shared
from cores.fixed import Q

from . import ir
from .capture import capture
from .errors import CompileError, InrarchError
from .evaluation import reference
from .formats import assign_formats, calibration_inputs, search_formats
from .lower import lower
from .passes import optimize
from .schedule import solve
from .solver_report import add_solver_report, fifo_entries
from .top import DataflowDesign

__all__ = ["Design", "SimulationResult", "compile"]

_MULTIPLYING_OPS = {"mul", "scale", "mul_const"}


@dataclass
class SimulationResult:
    """Outputs of a Verilator run (numpy arrays in the function's output order) and its cycles.

    ``overflow`` is the design's sticky flag: some core saturated a value its format cannot hold.
    ``overflow_core`` and ``overflow_op`` then name the first core that did (its instance name,
    which is its graph node's name, and the node's op); both are None while nothing overflowed.
    """

    outputs: list
    cycles: int
    overflow: bool
    run: object
    overflow_core: str = None
    overflow_op: str = None


class Design:
    """A compiled streaming design.

    Attributes
    ----------
    graph : inrarch.ir.Graph
        The optimized per-sample graph, with a number format on every node.
    netlist : inrarch.lower.Netlist
        Cores and streams, with the FIFO depths the solver set.
    schedule : inrarch.schedule.SolvedSchedule
        The solved timing of one batch of the example input's size.
    elaboratable : DataflowDesign
        The Amaranth component (stream ports ``x``, ``y0``, ``y1``, ...), ready to embed.
    report : dict
        Cycles, latency, buffer memory, multipliers, formats and more.
    """

    def __init__(self, graph, netlist, schedule, output_shapes, single_output, options, timings):
        self.graph = graph
        self.netlist = netlist
        self.schedule = schedule
        self.output_shapes = output_shapes
        self.single_output = single_output
        self.options = options
        self.elaboratable = DataflowDesign(netlist)
        # Most designs are compiled to be reported or solved, not converted: not a forgotten module.
        self.elaboratable._MustUse__silence = True
        self._verilog = None
        self.timings = dict(timings)
        self.report = self._make_report()

    @property
    def input_format(self):
        return self.graph.input.attrs["format"]

    @property
    def output_formats(self):
        return [node.attrs["format"] for node in self.graph.outputs]

    def verilog(self):
        """The design as Verilog text (module ``top``); the same inputs give the same bytes.

        Every distinct core, FIFO and part of a core is a module of its own, converted once
        (:func:`cores.shared.convert`).
        """
        if self._verilog is None:
            start = time.perf_counter()
            self._verilog = shared.convert(self.elaboratable, name="top")
            self.timings["verilog_seconds"] = time.perf_counter() - start
        return self._verilog

    def predict_cycles(self, batch):
        """Cycles the design takes for ``batch`` samples, from the latency solver."""
        return solve(self.netlist, batch).cycles

    def multipliers(self):
        """Multipliers in the datapath: matmul lanes, and one per element-wise multiplying core."""
        count, seen = 0, set()
        for instance in self.netlist.instances:
            if id(instance.core) in seen:
                continue
            seen.add(id(instance.core))
            op = instance.node.op
            if op == "matmul":
                count += instance.core.parallel * len(instance.core.channels)
            elif op in _MULTIPLYING_OPS:
                count += 1
        return count

    def _make_report(self):
        clock = self.options["clock_mhz"]
        fifos = fifo_entries(self.netlist)
        weights = {id(n.attrs["weight"]): n for n in self.graph.nodes if n.op == "matmul"}
        weight_bits = sum(int(np.prod(core.padded_shape)) * core.weight_format.width
                          for core in {id(i.core): i.core for i in self.netlist.instances if i.node.op == "matmul"}.values())
        return add_solver_report({
            "batch": self.schedule.batch,
            "cycles_predicted": self.schedule.cycles,
            "clock_mhz": clock,
            "latency_us": self.schedule.cycles / clock,
            "period_cycles": self.netlist.period,
            "critical_core": self.schedule.critical.name,
            "fifo_bits": sum(f["bits"] for f in fifos),
            "fifo_count": len(fifos),
            "multipliers": self.multipliers(),
            "dsp_estimate": self.netlist.dsps,
            "dsp_budget": self.options["dsp_budget"],
            "macs_per_sample": self.graph.macs(),
            "weight_matrices": len(weights),
            "weight_bits": weight_bits,
            "ops": self.graph.op_counts(),
            "input_format": str(self.input_format),
            "output_formats": [str(f) for f in self.output_formats],
            "formats": {node.name: str(node.attrs["format"]) for node in self.graph.nodes},
            "format_search": self.options["format_search"],
            "compile_seconds": round(sum(v for k, v in self.timings.items() if k != "verilog_seconds"), 3),
        }, self.netlist, self.schedule)

    def simulate(self, x, *, valid_prob=1.0, ready_prob=1.0, seed=0, watchdog=None, trace=None, progress=False):
        """Run the Verilog in Verilator (under cocotb) on the samples ``x`` of shape ``(batch, *in)``.

        Returns a :class:`SimulationResult` whose outputs are de-quantized to float64 numpy arrays
        with the function's output shapes. ``trace`` names an FST file that receives the waveform
        of every signal (open it in GTKWave or Surfer); ``progress=True`` shows the Verilator
        build and the output words received on stderr. ``watchdog`` is the cycles without a moved
        word after which the run stops as deadlocked (default: :data:`sim.streams.WATCHDOG_CYCLES`).
        """
        from sim import Deadlock, run_verilog
        from sim.streams import WATCHDOG_CYCLES

        samples = _as_samples(x, self.graph.input.shape)
        self._warn_outside_domain(samples)
        fmt = self.input_format
        words = [int(w) for w in fmt.to_unsigned(fmt.quantize(samples.reshape(-1)))]
        batch = samples.shape[0]
        expected = {stream.port: batch * stream.source.node.numel for stream in self.netlist.outputs}
        try:
            run = run_verilog(self.verilog(), top="top", inputs={"x": words}, outputs=expected,
                              status=("overflow", "overflow_core", "fifo_full", "fifo_empty"),
                              valid_prob=valid_prob, ready_prob=ready_prob, seed=seed,
                              watchdog=WATCHDOG_CYCLES if watchdog is None else watchdog,
                              trace=trace, progress=progress)
        except Deadlock as error:
            raise Deadlock(f"{error}\n{self.blocked_fifos(error.status)}", status=error.status) from None
        outputs = []
        for stream, shape in zip(self.netlist.outputs, self.output_shapes):
            out_fmt = stream.source.node.attrs["format"]
            raw = out_fmt.from_unsigned(run.outputs[stream.port])
            outputs.append(out_fmt.to_float(raw).reshape(batch, *shape))
        result = SimulationResult(outputs=outputs, cycles=run.cycles, overflow=bool(run.status["overflow"]), run=run)
        if result.overflow:
            self._report_overflow(result, run.status["overflow_core"])
        return result

    def blocked_fifos(self, status):
        """Which FIFOs were full and which empty, from the ``fifo_full``/``fifo_empty`` status words."""
        names = self.elaboratable.fifo_names
        full = [name for k, name in enumerate(names) if status.get("fifo_full", 0) >> k & 1]
        empty = [name for k, name in enumerate(names) if status.get("fifo_empty", 0) >> k & 1]
        return (f"full FIFOs: {', '.join(full) or 'none'}; "
                f"empty FIFOs: {len(empty)} of {len(names)}{': ' + ', '.join(empty) if len(empty) <= 12 else ''}")

    def _report_overflow(self, result, code):
        """Name the core behind the ``overflow_core`` status ``code`` in ``result`` and warn about it."""
        import warnings

        culprit = self.overflow_source(code)
        if culprit is None:
            warnings.warn("the design overflowed (saturated) but did not say which core did", RuntimeWarning,
                          stacklevel=3)
            return
        result.overflow_core, result.overflow_op = culprit.name, culprit.node.op
        # Matmul channels may share one core, whose flag then stands for all of them.
        sharing = [i.name for i in self.netlist.instances if i.core is culprit.core and i is not culprit]
        also = f" (a core shared with {', '.join(sharing)})" if sharing else ""
        fmt = culprit.node.attrs["format"]
        warnings.warn(f"overflow: the {culprit.node.op} core {culprit.name}{also} saturated values beyond the "
                      f"±{fmt.max_value:g} of its format {fmt}; outputs are wrong. Widen the formats (larger "
                      "`width` or `margin`, or a `format` with more integer bits) or narrow the inputs.",
                      RuntimeWarning, stacklevel=3)

    def overflow_source(self, code):
        """The core named by an ``overflow_core`` status value (1-based), or None."""
        return self.netlist.instances[code - 1] if code else None

    def _warn_outside_domain(self, samples):
        import warnings

        low, high = self.options["domain"]
        smallest, largest = float(samples.min()), float(samples.max())
        if smallest >= low and largest <= high:
            return
        fmt = self.input_format
        clipped = (f"; values beyond ±{fmt.max_value:g} are clipped to the input format {fmt}"
                   if max(-smallest, largest) > fmt.max_value else "")
        warnings.warn(f"inputs span [{smallest:g}, {largest:g}], outside the domain [{low}, {high}] the number "
                      f"formats were derived for: results may saturate{clipped}", stacklevel=3)


def _as_samples(x, sample_shape):
    """``x`` as a float64 array of samples of ``sample_shape``; raise InrarchError before any simulation
    when it is not one (wrong type or shape, no samples, NaN or infinite values)."""
    if isinstance(x, torch.Tensor):
        if x.dtype.is_complex or x.dtype == torch.bool:
            raise InrarchError(f"inputs must be real numbers, not {x.dtype}")
        array = x.detach().cpu().to(torch.float64).numpy()  # numpy has no bfloat16
    else:
        try:
            array = np.asarray(x)
        except ValueError as error:  # ragged nested sequences
            raise InrarchError(f"inputs are not an array of numbers: {error}") from None
    if array.dtype.kind not in "fiu":
        raise InrarchError(f"inputs must be real numbers, not {array.dtype}")
    array = array.astype(np.float64)
    per_sample = int(np.prod(sample_shape))
    if array.ndim < 1 or array.size % per_sample or array.size // per_sample != array.shape[0]:
        raise InrarchError(f"inputs of shape {array.shape} do not hold samples of shape {tuple(sample_shape[1:])}")
    if array.shape[0] == 0:
        raise InrarchError("inputs hold no samples")
    bad = ~np.isfinite(array.reshape(array.shape[0], -1))
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        kinds = " and ".join(k for k, f in (("NaN", np.isnan), ("infinite", np.isinf)) if np.any(f(array)))
        raise InrarchError(f"inputs contain {kinds} values (in sample{'s' if len(rows) > 1 else ''} "
                           f"{', '.join(map(str, rows[:5]))}{', ...' if len(rows) > 5 else ''}); "
                           "the hardware takes only finite numbers")
    return array.reshape(array.shape[0], *sample_shape)


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
            clock_mhz=300.0, max_parallel=None, dsp_budget=None, progress=False):
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
        Clock the report's latency is given at.
    max_parallel : int, optional
        Cap on the multipliers of any one matmul.
    dsp_budget : int, optional
        Estimated DSP48E2 slices the design may use; the pace slows until it fits.
    progress : bool
        Show the format search's progress on stderr.
    """
    _check_example(example_input)
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
    search = None
    if format is None and width is None:
        search = search_formats(graph, tolerance=tolerance, margin=margin, domain=domain, progress=progress)
    else:
        assign_formats(graph, width=width, margin=margin, domain=domain, forced=format)
    lap("formats")
    netlist = lower(graph, dsp_budget=dsp_budget, max_parallel=max_parallel)
    lap("lower")
    schedule = solve(netlist, example_input.shape[0])
    for stream, depth in schedule.depths.items():
        stream.depth = depth
    lap("solve")
    options = {"format": str(format) if format else None, "width": width, "tolerance": tolerance,
               "format_search": search.as_dict() if search else None, "margin": margin,
               "domain": tuple(domain), "clock_mhz": clock_mhz, "max_parallel": max_parallel,
               "dsp_budget": dsp_budget}
    return Design(graph, netlist, schedule, output_shapes, single, options, timings)

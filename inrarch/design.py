"""A compiled design: its Verilog, its report, and its simulation in Verilator (:class:`Design`)."""

import functools
import time
from dataclasses import dataclass

import numpy as np
import torch

from cores import shared

from .errors import InrarchError
from .report import count_multipliers, design_report
from .schedule import solve
from .top import DataflowDesign, fifo_names

__all__ = ["Design", "SimulationResult"]


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
        Cores and streams; their FIFO depths are the schedule's.
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
        self._verilog = None
        self.timings = dict(timings)
        self.report = design_report(self)

    @functools.cached_property
    def elaboratable(self):
        """The Amaranth component, built when first asked for: most designs are compiled to be
        reported or solved, not converted."""
        return DataflowDesign(self.netlist, self.schedule.depths)

    @property
    def formats(self):
        """The number format of every node (:class:`inrarch.formats.Formats`)."""
        return self.netlist.formats

    @property
    def input_format(self):
        return self.netlist.source.format

    @property
    def output_formats(self):
        return [stream.format for stream in self.netlist.outputs]

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
        """Multipliers in the datapath (:func:`inrarch.report.count_multipliers`)."""
        return count_multipliers(self.netlist)

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
        batch = samples.shape[0]
        # The design computes whole groups of lanes samples: zeros fill the last group.
        padded = np.zeros((self.netlist.samples(batch), *samples.shape[1:]))
        padded[:batch] = samples
        fmt = self.input_format
        words = [int(w) for w in fmt.to_unsigned(fmt.quantize(padded.reshape(-1)))]
        expected = {stream.port: len(padded) * stream.source.node.numel for stream in self.netlist.outputs}
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
            out_fmt = stream.format
            raw = out_fmt.from_unsigned(run.outputs[stream.port])
            outputs.append(out_fmt.to_float(raw).reshape(len(padded), *shape)[:batch])
        result = SimulationResult(outputs=outputs, cycles=run.cycles, overflow=bool(run.status["overflow"]), run=run)
        if result.overflow:
            self._report_overflow(result, run.status["overflow_core"])
        return result

    def blocked_fifos(self, status):
        """Which FIFOs were full and which empty, from the ``fifo_full``/``fifo_empty`` status words."""
        names = fifo_names(self.netlist)
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
        fmt = culprit.format
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

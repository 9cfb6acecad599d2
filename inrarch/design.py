"""A compiled design: its Verilog, its report, and its simulation in Verilator (:class:`Design`)."""

import functools
import time
from dataclasses import dataclass

import numpy as np
import torch

from cores import shared
from cores.weights import WORD_BITS, image_bytes
from cores.weights import image_words as words_of_image

from .errors import InrarchError
from .report import count_multipliers, design_report
from .schedule import solve
from .top import DataflowDesign, fifo_names
from .weights import WeightError, image_words, parameter_values, segments

__all__ = ["Design", "SimulationResult"]


@dataclass
class SimulationResult:
    """Outputs of a Verilator run (numpy arrays in the function's output order) and its cycles.

    ``overflow`` is the design's sticky flag: some core saturated a value its format cannot hold.
    ``overflow_core`` and ``overflow_op`` then name the first core that did (its instance name,
    which is its graph node's name, and the node's op); both are None while nothing overflowed.
    In a simulation of several runs (:meth:`Design.simulate_runs`) the flag is the one at the end.

    ``load_cycles``, for a run that loaded weights first, counts from the cycle the design took the
    image's first word to the cycle it took the run's first sample (``report["weight_load_cycles"]``
    predicts it); None for a run that loaded nothing.
    """

    outputs: list
    cycles: int
    overflow: bool
    run: object
    overflow_core: str = None
    overflow_op: str = None
    load_cycles: int = None


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
    options : inrarch.CompileOptions
        The options it was compiled with.
    output_shapes : list of tuple
        Each output's shape per sample.
    output_meanings : list of str
        What each output is: ``"value"``, ``"gradient"``, ``"Hessian"``, ... for
        ``inrarch.derivatives``, else ``"fn(x)[k]"``.
    family : inrarch.weights.WeightFamily or None
        For a design with runtime weights, the networks it accepts: every parameter and buffer's
        name, shape and bound. None for constant weights.
    report : dict
        Cycles, latency, buffer memory, multipliers, formats and more.
    """

    def __init__(self, graph, netlist, schedule, output_shapes, single_output, options, timings, *,
                 output_meanings=None, family=None, example_weights=None):
        self.graph = graph
        self.netlist = netlist
        self.schedule = schedule
        self.output_shapes = output_shapes
        self.single_output = single_output
        self.options = options
        self.output_meanings = output_meanings or [f"output {k}" for k in range(len(output_shapes))]
        self.family = family
        self._example = example_weights
        self._example_image = None
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
    def format_search(self):
        """What the format search found (:class:`inrarch.formats.FormatSearch`); None when the
        formats were given (``format``, ``width``)."""
        return self.formats.search

    @property
    def input_format(self):
        return self.netlist.source.format

    @property
    def output_formats(self):
        return [stream.format for stream in self.netlist.outputs]

    @classmethod
    def load(cls, path):
        """The design a build directory holds (``python -m inrarch.build``, or :meth:`save`), reopened
        without compiling again (:mod:`inrarch.saved`): its graph is lowered again with the saved
        choices and its Verilog read from ``top.v``. A design with runtime weights then takes the
        weights of other networks (:meth:`weight_image`, :meth:`simulate`); without weights it
        loads ``weights.bin``, the network it was compiled from."""
        from .saved import load  # noqa: PLC0415 -- saved imports this module

        return load(path)

    def save(self, path):
        """Write what :meth:`load` reopens into the directory ``path`` (``top.v`` too, if missing)."""
        from .saved import save  # noqa: PLC0415

        return save(self, path)

    def adopt_verilog(self, text):
        """Take ``text`` as the design's Verilog (read from a build directory) instead of converting it."""
        self._verilog = text

    def adopt_image(self, image):
        """Take ``image`` (a build directory's ``weights.bin``) as the weights of the network the design
        was compiled from, which it loads when given none."""
        self._example_image = self.check_image(image)

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

    @property
    def runtime_weights(self):
        """Whether the design loads its weights at run time (``compile(weights="runtime")``)."""
        return self.family is not None

    @property
    def weight_words(self):
        """Words of the design's weight image (:mod:`cores.weights`); 0 for constant weights."""
        return sum(segment.layout.words for segment in self.segments)

    @property
    def segments(self):
        """The parts of the weight image, one per core that holds a stored tensor
        (:class:`inrarch.weights.Segment`), in image order; empty for constant weights."""
        return segments(self.netlist)

    def check_weights(self, weights):
        """Refuse ``weights`` unless the design can load them; return their float64 values by name.

        ``weights`` is a ``torch.nn.Module`` of the compiled architecture or its ``state_dict``.
        :class:`~inrarch.weights.WeightError` says, in one line, which tensor is of another shape,
        holds NaN or infinity, or leaves the family the design was compiled for (:attr:`family`).
        """
        if not self.runtime_weights:
            raise WeightError("the design's weights are constants of its hardware: compile with "
                              "weights='runtime' to load others")
        values = parameter_values(weights, self.family.names)
        self.family.check(values)
        return values

    def weight_image(self, weights=None):
        """The bytes to load into the design's ``weights`` port (or the kernel's weights buffer) so that
        it computes with ``weights`` (:meth:`check_weights`); None: the model it was compiled from.

        The image is the segments of :meth:`inrarch.lower.Netlist.loaded`, one after another, each
        a core's memory in the word layout of :mod:`cores.weights`: ``weight_words`` words of
        ``WORD_BITS`` bits, little-endian.
        """
        return image_bytes(self._image_words(weights))

    def check_image(self, image):
        """Refuse bytes that are not a weight image of this design; return its words."""
        expected = self.weight_words * WORD_BITS // 8
        if len(image) != expected:
            raise WeightError(f"the weight image has {len(image)} bytes; the design takes {expected} "
                              f"({self.weight_words} words of {WORD_BITS // 8} bytes)")
        return words_of_image(bytes(image))

    def _image_words(self, weights):
        if weights is None and self._example_image is not None:
            return self._example_image
        if weights is None and self.runtime_weights:
            values = self._example
        elif isinstance(weights, (bytes, bytearray)):
            return self.check_image(weights)
        else:
            values = self.check_weights(weights)
        return image_words(self.segments, self.graph.program.evaluate(values))

    def predict_cycles(self, batch):
        """Cycles the design takes for ``batch`` samples, from the latency solver."""
        return solve(self.netlist, batch).cycles

    def multipliers(self):
        """Multipliers in the datapath (:func:`inrarch.report.count_multipliers`)."""
        return count_multipliers(self.netlist)

    def simulate(self, x, *, weights=None, valid_prob=1.0, ready_prob=1.0, seed=0, watchdog=None, trace=None,
                 progress=False):
        """Run the Verilog in Verilator (under cocotb) on the samples ``x`` of shape ``(batch, *in)``.

        Returns a :class:`SimulationResult` whose outputs are de-quantized to float64 numpy arrays
        with the function's output shapes. A design with runtime weights first loads ``weights``
        (:meth:`weight_image`: a network of the compiled architecture, its ``state_dict``, or an
        image's bytes; by default the network it was compiled from). ``trace`` names an FST file
        that receives the waveform of every signal (open it in GTKWave or Surfer); ``progress=True``
        shows the Verilator build and the output words received on stderr. ``watchdog`` is the
        cycles without a moved word after which the run stops as deadlocked (default:
        :data:`sim.streams.WATCHDOG_CYCLES`).
        """
        return self.simulate_runs([(x, weights)], valid_prob=valid_prob, ready_prob=ready_prob, seed=seed,
                                  watchdog=watchdog, trace=trace, progress=progress)[0]

    def simulate_runs(self, runs, *, valid_prob=1.0, ready_prob=1.0, seed=0, watchdog=None, trace=None,
                      progress=False):
        """Run several batches in one Verilator simulation: ``runs`` is a list of ``(x, weights)``.

        Before each batch with ``weights`` the design loads them (see :meth:`simulate`); a batch
        with None keeps the weights it has (a design with runtime weights loads the network it was
        compiled from before the first). The image of a load is offered once the batch before has
        been taken, and the design itself holds it until that batch has left. Returns one
        :class:`SimulationResult` per run, its cycles from the run's first sample taken to its last
        output word.
        """
        from sim import Deadlock, run_verilog
        from sim.streams import WATCHDOG_CYCLES

        if not self.runtime_weights and any(weights is not None for _, weights in runs):
            raise WeightError("the design's weights are constants of its hardware: compile with "
                              "weights='runtime' to load others")
        phases, batches = [], []
        for index, (x, weights) in enumerate(runs):
            samples = _as_samples(x, self.graph.input.shape)
            self._warn_outside_domain(samples)
            load = self.runtime_weights and (weights is not None or index == 0)
            if load:
                phases.append({"weights": self._image_words(weights)})
            # The design computes whole groups of lanes samples: zeros fill the last group.
            padded = np.zeros((self.netlist.samples(samples.shape[0]), *samples.shape[1:]))
            padded[:samples.shape[0]] = samples
            fmt = self.input_format
            phases.append({"x": [int(w) for w in fmt.to_unsigned(fmt.quantize(padded.reshape(-1)))]})
            batches.append((samples.shape[0], len(padded), load))
        expected = {stream.port: sum(padded * stream.source.node.numel for _, padded, _ in batches)
                    for stream in self.netlist.outputs}
        try:
            run = run_verilog(self.verilog(), top="top", inputs=phases, outputs=expected,
                              status=("overflow", "overflow_core", "fifo_full", "fifo_empty"),
                              valid_prob=valid_prob, ready_prob=ready_prob, seed=seed,
                              watchdog=WATCHDOG_CYCLES if watchdog is None else watchdog,
                              trace=trace, progress=progress)
        except Deadlock as error:
            raise Deadlock(f"{error}\n{self.blocked_fifos(error.status)}", status=error.status) from None
        return self._results(run, batches)

    def _results(self, run, batches):
        """One :class:`SimulationResult` per batch ``(samples, padded samples, loaded first)`` of ``run``."""
        results = []
        taken = dict.fromkeys(["x", "weights", *(stream.port for stream in self.netlist.outputs)], 0)
        for batch, padded, loaded in batches:
            load_cycles = None
            first = run.accepts["x"][taken["x"]]
            if loaded:
                load_cycles = first - run.accepts["weights"][taken["weights"]]
                taken["weights"] += self.weight_words
            taken["x"] += padded * self.netlist.source.node.numel
            outputs, last = [], first
            for stream, shape in zip(self.netlist.outputs, self.output_shapes):
                words = padded * stream.source.node.numel
                start = taken[stream.port]
                taken[stream.port] += words
                out_fmt = stream.format
                raw = out_fmt.from_unsigned(run.outputs[stream.port][start:start + words])
                outputs.append(out_fmt.to_float(raw).reshape(padded, *shape)[:batch])
                last = max(last, run.emits[stream.port][start + words - 1])
            result = SimulationResult(outputs=outputs, cycles=last - first + 1, overflow=bool(run.status["overflow"]),
                                      run=run, load_cycles=load_cycles)
            if result.overflow:
                self._report_overflow(result, run.status["overflow_core"])
            results.append(result)
        return results

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

        flat = samples.reshape(len(samples), -1)
        ranges = np.array(self.options.domain_ranges(flat.shape[1]))
        outside = (flat < ranges[:, 0]) | (flat > ranges[:, 1])
        if not outside.any():
            return
        smallest, largest = float(samples.min()), float(samples.max())
        fmt = self.input_format
        clipped = (f"; values beyond ±{fmt.max_value:g} are clipped to the input format {fmt}"
                   if max(-smallest, largest) > fmt.max_value else "")
        element = int(np.flatnonzero(outside.any(axis=0))[0])
        low, high = ranges[element]
        warnings.warn(f"inputs span [{float(flat[:, element].min()):g}, {float(flat[:, element].max()):g}] in "
                      f"element {element}, outside the domain [{low:g}, {high:g}] the number formats were derived "
                      f"for: results may saturate{clipped}", stacklevel=3)


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

"""Cocotb drivers for stream ports, and the cocotb test that :func:`sim.run_verilog` runs.

:class:`StreamDriver` and :class:`StreamMonitor` send words into and take words from a stream port
of a generated design (``x``, ``y0``, ...) inside a cocotb test of your own; docs/cocotb.md shows
one. Each port's handshake lives in its :meth:`~StreamDriver.drive` and
:meth:`~StreamDriver.sample` steps: :meth:`~StreamDriver.send` and :meth:`~StreamMonitor.receive`
run them with cocotb triggers, and the test below runs the same steps of every port from two
simulator callbacks per cycle.

The test reads its job from the JSON file named by ``$INRARCH_SIM_JOB``, streams the input words into
the design's stream ports, collects the output words, and writes what happened to the result file
named in the job. Words travel as hexadecimal strings so that payloads of any width survive JSON.

Each clock cycle takes two simulator callbacks. Just after the rising edge, :meth:`_Streamer.drive`
sets the inputs of the new cycle (``valid``/``payload`` of sources, ``ready`` of sinks); the writes
are inertial, so they land after the edge. In the ``ReadOnly`` phase of the same cycle,
:meth:`_Streamer.sample` reads the settled handshakes. A word moves in cycle ``c`` when ``valid``
and ``ready`` are both high in the ``ReadOnly`` phase of ``c``, i.e. at the rising edge that ends
``c``. Cycle 0 is the first cycle after reset.

Speed: the two per-cycle callbacks are registered with the simulator directly
(``cocotb.simulator``) instead of awaiting ``RisingEdge``/``ReadOnly`` triggers, which skips
cocotb's scheduler and runs about 2.4 times as many cycles per second; the test coroutine only
sets up, polls for the end every few hundred cycles, and reads the final status. Signals are read
and written through the raw simulator handles (``handle._handle``), which is twice as fast as
``handle.value`` and its ``LogicArray`` objects; Verilator is two-state, so the bit strings never
hold X or Z. Both are internals of cocotb 2.1, which the project pins.
"""

import json
import os
import random
import time
import traceback
from pathlib import Path

import cocotb
from cocotb import simulator
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, Timer

__all__ = ["StreamDriver", "StreamMonitor"]

JOB_ENV = "INRARCH_SIM_JOB"
#: Lines starting with this, then the output words taken so far, report the progress of a run.
PROGRESS_PREFIX = "inrarch-progress: "

_DEPOSIT = 0  # cocotb's _GPISetAction.DEPOSIT: inertial with COCOTB_TRUST_INERTIAL_WRITES (the runner sets it)
_CLOCK_STEPS = 2
_POLL_CYCLES = 256
_PROGRESS_SECONDS = 0.2


def _reader(handle):
    """A function returning the signal's value as an unsigned int."""
    get = handle._handle.get_signal_val_binstr
    return lambda: int(get(), 2)


def _bit_reader(handle):
    """A function returning whether a 1-bit signal is high."""
    get = handle._handle.get_signal_val_binstr
    return lambda: get() == "1"


def _writer(handle):
    """A function setting the signal to an unsigned int (inertially: it lands after the current edge)."""
    width = len(handle)
    name = handle._name
    if width <= 32:
        set_int = handle._handle.set_signal_val_int

        def write(value):
            if value >> width:
                raise ValueError(f"word {value:#x} does not fit the {width} bits of {name}")
            set_int(_DEPOSIT, value)
    else:
        set_bits = handle._handle.set_signal_val_binstr

        def write(value):
            if value >> width:
                raise ValueError(f"word {value:#x} does not fit the {width} bits of {name}")
            set_bits(_DEPOSIT, format(value, f"0{width}b"))
    return write


def _signal(dut, name):
    handle = dut._get(name)
    if handle is not None:
        return handle
    names = sorted(child._name for child in dut)
    streams = sorted({name.rsplit("__", 1)[0] for name in names if name.endswith("__valid")})
    raise AttributeError(f"the design has no signal {name}; stream ports: {streams}; "
                         f"other ports: {[n for n in names if '__' not in n]}")


class _Port:
    """What a driver and a monitor share: the clock, the random draws and the loop that clocks them."""

    def __init__(self, dut, name, clock, probability, seed):
        self.name = name
        self.cycle = 0
        self.clock = _signal(dut, clock)
        self.probability = probability
        self.draw = random.Random(f"{seed}:{name}").random if probability < 1.0 else None

    async def _clock_until(self, finished):
        """Run :meth:`drive` and :meth:`sample` each cycle until ``finished()``; then, after the edge, :meth:`idle`."""
        edge = RisingEdge(self.clock)
        while not finished():
            await edge
            self.drive()
            await ReadOnly()
            self.sample()
        await edge
        self.idle()


class StreamDriver(_Port):
    """Drives the input stream port ``name`` of a generated design (``top.v`` from inrarch or Amaranth).

    A stream port ``x`` is the Verilog ports ``x__payload``, ``x__valid`` and ``x__ready``. The
    driver offers one word at a time: it raises ``valid`` with the word in the cycle after a
    rising edge and holds both until ``ready`` is high at a rising edge, which is when the word
    moves. Start the clock and release the reset before sending.

    Parameters
    ----------
    dut : cocotb.handle.HierarchyObject
        The design's top module, as a cocotb test receives it.
    name : str
        The stream port, e.g. ``"x"``.
    clock : str
        The clock signal the words move on.
    valid_prob : float
        Probability, per cycle, that an idle driver offers its next word (1: no gaps).
    seed : int
        Seed of the gaps; the same seed gives the same pattern.

    Attributes
    ----------
    words : list of int
        Every word given to :meth:`send`, in order.
    sent : int
        How many of them the design accepted.
    accepts, arrivals : list of int
        For each accepted word, the cycle it moved in and the cycle it was first offered, counting
        the cycles this driver has been clocked through (:meth:`drive` then :meth:`sample`).

    Examples
    --------
    >>> driver = StreamDriver(dut, "x")        # doctest: +SKIP
    >>> await driver.send([0x0123, 0x0456])    # doctest: +SKIP
    """

    def __init__(self, dut, name, *, clock="clk", valid_prob=1.0, seed=0):
        super().__init__(dut, name, clock, valid_prob, seed)
        self.words = []
        self.limit = None  # offer no word beyond this many (None: all of them)
        self.sent = 0
        self.offered = False
        self.valid_high = False
        self.accepts = []
        self.arrivals = []
        self.set_valid = _writer(_signal(dut, f"{name}__valid"))
        self.set_payload = _writer(_signal(dut, f"{name}__payload"))
        self.is_ready = _bit_reader(_signal(dut, f"{name}__ready"))

    async def send(self, words):
        """Offer ``words`` one after another and return once the design accepted the last one.

        Parameters
        ----------
        words : iterable of int
            Payload words as unsigned integers of the payload's width (for an inrarch design,
            ``fmt.to_unsigned(fmt.quantize(values))`` with ``fmt = design.input_format``).
        """
        self.words.extend(int(word) for word in words)
        await self._clock_until(lambda: self.sent == len(self.words))

    def drive(self):
        """Just after a rising edge: offer the next word if there is one (and the gap draw allows)."""
        if not self.offered and self.sent < (len(self.words) if self.limit is None else self.limit):
            if self.draw is None or self.draw() < self.probability:
                self.set_payload(self.words[self.sent])
                self.offered = True
                self.arrivals.append(self.cycle)
        if self.offered != self.valid_high:
            self.set_valid(int(self.offered))
            self.valid_high = self.offered

    def sample(self):
        """In the ReadOnly phase: return whether the offered word moves at the coming rising edge."""
        moved = self.offered and self.is_ready()
        if moved:
            self.accepts.append(self.cycle)
            self.sent += 1
            self.offered = False
        self.cycle += 1
        return moved

    def idle(self):
        """Drop ``valid`` (after the current edge), so that no word moves."""
        self.set_valid(0)
        self.valid_high = False

    def status(self):
        """How many words moved, and why the driver is stuck if it is."""
        state = "done" if self.sent == len(self.words) else (
            "stalled: valid high, ready low" if self.offered else "stalled: not offering")
        return f"input {self.name}: {self.sent}/{len(self.words)} words accepted ({state})"


class StreamMonitor(_Port):
    """Takes words from the output stream port ``name`` of a generated design.

    The monitor raises ``ready`` while it wants words, and takes a word at each rising edge where
    ``valid`` is high too. Start the clock and release the reset before receiving.

    Parameters
    ----------
    dut : cocotb.handle.HierarchyObject
        The design's top module, as a cocotb test receives it.
    name : str
        The stream port, e.g. ``"y0"``.
    clock : str
        The clock signal the words move on.
    ready_prob : float
        Probability that the monitor is ready in a cycle in which it wants a word (1: no
        back-pressure).
    seed : int
        Seed of the back-pressure; the same seed gives the same pattern.

    Attributes
    ----------
    words : list of int
        Every word taken, in order (unsigned payload bits).
    emits : list of int
        For each word, the cycle it moved in, counting the cycles this monitor has been clocked
        through (:meth:`drive` then :meth:`sample`).

    Examples
    --------
    >>> monitor = StreamMonitor(dut, "y0")     # doctest: +SKIP
    >>> words = await monitor.receive(8)       # doctest: +SKIP
    """

    def __init__(self, dut, name, *, clock="clk", ready_prob=1.0, seed=0):
        super().__init__(dut, name, clock, ready_prob, seed)
        self.wanted = 0
        self.words = []
        self.emits = []
        self.ready_high = False
        self.valid_seen = False
        self.set_ready = _writer(_signal(dut, f"{name}__ready"))
        self.is_valid = _bit_reader(_signal(dut, f"{name}__valid"))
        self.payload = _reader(_signal(dut, f"{name}__payload"))

    async def receive(self, count):
        """Take the next ``count`` words and return them.

        Returns
        -------
        list of int
            The words, as unsigned integers of the payload's width (for an inrarch design,
            ``fmt.to_float(fmt.from_unsigned(words))`` with ``fmt = design.output_formats[k]``
            for port ``yk``).
        """
        first = len(self.words)
        self.wanted = first + int(count)
        await self._clock_until(lambda: len(self.words) == self.wanted)
        return self.words[first:]

    def drive(self):
        """Just after a rising edge: raise ``ready`` while words are wanted (and the draw allows)."""
        ready = len(self.words) < self.wanted and (self.draw is None or self.draw() < self.probability)
        if ready != self.ready_high:
            self.set_ready(int(ready))
            self.ready_high = ready

    def sample(self):
        """In the ReadOnly phase: take the word that moves at the coming rising edge; return whether one does."""
        moved = False
        if self.ready_high:
            self.valid_seen = self.is_valid()
            if self.valid_seen:
                self.words.append(self.payload())
                self.emits.append(self.cycle)
                moved = True
        self.cycle += 1
        return moved

    def idle(self):
        """Drop ``ready`` (after the current edge), so that no word moves."""
        self.set_ready(0)
        self.ready_high = False

    def status(self):
        """How many words moved, and why the monitor is stuck if it is."""
        state = "done" if len(self.words) == self.wanted else (
            "stalled: valid high, ready low" if self.valid_seen else "stalled: waiting for valid")
        return f"output {self.name}: {len(self.words)}/{self.wanted} words taken ({state})"


class _Streamer:
    """Moves the words through every port at once, one :meth:`drive` and one :meth:`sample` callback per cycle."""

    def __init__(self, dut, job):
        self.clk = _signal(dut, "clk")._handle
        self.watchdog = job["watchdog"]
        self.max_cycles = job["max_cycles"]
        seed = job["seed"]
        self.sources = []
        for name, words in job["inputs"].items():
            self.sources.append(StreamDriver(dut, name, valid_prob=job["valid_prob"], seed=seed))
            self.sources[-1].words = [int(word, 16) for word in words]
        self.sinks = []
        for name, count in job["outputs"].items():
            self.sinks.append(StreamMonitor(dut, name, ready_prob=job["ready_prob"], seed=seed))
            self.sinks[-1].wanted = count
        self.ports = self.sources + self.sinks
        # Phases: the words each source may have offered once every earlier phase was accepted.
        self.phase_ends = []
        totals = dict.fromkeys(job["inputs"], 0)
        for phase in job.get("phases") or [{name: len(words) for name, words in job["inputs"].items()}]:
            for name, count in phase.items():
                totals[name] += count
            self.phase_ends.append(dict(totals))
        self.phase = 0
        self._open_phase()
        self.pending = sum(len(s.words) for s in self.sources) + sum(s.wanted for s in self.sinks)
        self.cycle = 0
        self.last_move = 0
        self.done = self.pending == 0
        self.stop = None
        self.error = None
        self.started = self.finished = time.perf_counter()

    def _open_phase(self):
        ends = self.phase_ends[self.phase]
        for source in self.sources:
            source.limit = ends[source.name]

    def _advance_phase(self):
        """Open the next phase once every word of the current one was accepted."""
        while (self.phase + 1 < len(self.phase_ends)
               and all(source.sent >= source.limit for source in self.sources)):
            self.phase += 1
            self._open_phase()

    def drive(self):
        """Just after a rising edge: set the inputs of the new cycle."""
        try:
            self._advance_phase()
            for port in self.ports:
                port.drive()
            simulator.register_readonly_callback(self.sample)
        except Exception:
            self._fail()

    def sample(self):
        """In the ReadOnly phase: record the words that move at the coming rising edge."""
        try:
            cycle = self.cycle
            moved = False
            for port in self.ports:
                if port.sample():
                    self.pending -= 1
                    moved = True
            if moved:
                self.last_move = cycle
                if not self.pending:
                    return self._finish()
            elif cycle - self.last_move >= self.watchdog:
                return self._finish("deadlock", f"no stream word moved for {self.watchdog} cycles "
                                                f"(cycle {cycle}): {self.report()}")
            if cycle + 1 >= self.max_cycles:
                return self._finish("cycle_limit", f"words still expected after max_cycles={self.max_cycles} "
                                                   f"cycles: {self.report()}")
            self.cycle = cycle + 1
            simulator.register_value_change_callback(self.clk, self.drive, simulator.RISING)
        except Exception:
            self._fail()

    def _finish(self, kind=None, message=None):
        self.finished = time.perf_counter()
        if kind is not None:
            self.stop = {"kind": kind, "cycle": self.cycle, "message": message}
        # Drop valid and ready after the last transfer so no word moves twice.
        simulator.register_value_change_callback(self.clk, self.quiesce, simulator.RISING)

    def quiesce(self):
        try:
            for port in self.ports:
                port.idle()
        except Exception:
            self._fail()
        self.done = True

    def _fail(self):
        self.error = traceback.format_exc()
        self.finished = time.perf_counter()
        self.done = True

    def taken(self):
        """Output words taken so far."""
        return sum(len(sink.words) for sink in self.sinks)

    def report(self):
        """Words moved per port, and why each unfinished port is stuck."""
        return "; ".join(port.status() for port in self.ports)


async def _stream(dut, job):
    status = {name: _reader(_signal(dut, name)) for name in job["status"]}
    streamer = _Streamer(dut, job)
    rising = RisingEdge(dut.clk)
    Clock(dut.clk, _CLOCK_STEPS, unit="step").start()
    rst = _writer(dut.rst) if dut._get("rst") is not None else None
    if rst is not None:
        rst(1)
    for _ in range(job["reset_cycles"]):
        await rising
    if rst is not None:
        rst(0)
    streamer.started = time.perf_counter()
    if streamer.done:
        streamer.finished = streamer.started
    else:
        streamer.drive()  # cycle 0 starts at the edge that just woke us
    reported = time.perf_counter()
    while not streamer.done:
        await Timer(_POLL_CYCLES * _CLOCK_STEPS, unit="step")
        if job["progress"] and time.perf_counter() - reported >= _PROGRESS_SECONDS:
            print(f"{PROGRESS_PREFIX}{streamer.taken()}", flush=True)
            reported = time.perf_counter()
    if job["progress"]:
        print(f"{PROGRESS_PREFIX}{streamer.taken()}", flush=True)
    if streamer.error is not None:
        raise RuntimeError(f"stream driver failed in cycle {streamer.cycle}:\n{streamer.error}")

    # A design that emits more words than expected is wrong too: keep every sink ready a while.
    # The polling timer wakes on a clock edge, and a ready written there would already count at
    # it, so the drain starts after the next edge.
    extra = {sink.name: 0 for sink in streamer.sinks}
    if streamer.stop is None and job["drain_cycles"]:
        await rising
        for sink in streamer.sinks:
            sink.set_ready(1)
        for _ in range(job["drain_cycles"]):
            await ReadOnly()
            for sink in streamer.sinks:
                extra[sink.name] += sink.is_valid()
            await rising
        for sink in streamer.sinks:
            sink.set_ready(0)

    # Flags set by the last words (e.g. a sticky overflow) settle before they are read.
    await rising
    await rising
    await ReadOnly()
    return {
        "outputs": {sink.name: [format(word, "x") for word in sink.words] for sink in streamer.sinks},
        "accepts": {source.name: source.accepts for source in streamer.sources},
        "arrivals": {source.name: source.arrivals for source in streamer.sources},
        "emits": {sink.name: sink.emits for sink in streamer.sinks},
        "status": {name: format(read(), "x") for name, read in status.items()},
        "simulated_cycles": streamer.cycle + 1,
        "loop_seconds": streamer.finished - streamer.started,
        "stop": streamer.stop,
        "extra_words": extra,
    }


def _write_result(path, result):
    scratch = Path(f"{path}.partial")
    scratch.write_text(json.dumps(result))
    os.replace(scratch, path)


@cocotb.test()
async def stream_words(dut):
    """Stream the job's words through the design and record every transfer."""
    job = json.loads(Path(os.environ[JOB_ENV]).read_text())
    try:
        result = await _stream(dut, job)
    except Exception:
        _write_result(job["result"], {"error": traceback.format_exc()})
        raise
    _write_result(job["result"], result)

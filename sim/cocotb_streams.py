"""The cocotb test that :func:`sim.run_verilog` runs inside the simulator.

It reads its job from the JSON file named by ``$INRARCH_SIM_JOB``, streams the input words into
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

JOB_ENV = "INRARCH_SIM_JOB"

_DEPOSIT = 0  # cocotb's _GPISetAction.DEPOSIT: inertial with COCOTB_TRUST_INERTIAL_WRITES (the runner sets it)
_CLOCK_STEPS = 2
_POLL_CYCLES = 256


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


class _Source:
    """Driver state of one input stream."""

    def __init__(self, dut, name, words, valid_prob, seed):
        self.name = name
        self.words = words
        self.sent = 0
        self.offered = False
        self.valid_high = False
        self.accepts = []
        self.arrivals = []
        self.set_valid = _writer(_signal(dut, f"{name}__valid"))
        self.set_payload = _writer(_signal(dut, f"{name}__payload"))
        self.is_ready = _bit_reader(_signal(dut, f"{name}__ready"))
        self.draw = random.Random(f"{seed}:{name}").random if valid_prob < 1.0 else None
        self.valid_prob = valid_prob


class _Sink:
    """Collector state of one output stream."""

    def __init__(self, dut, name, count, ready_prob, seed):
        self.name = name
        self.count = count
        self.words = []
        self.emits = []
        self.ready_high = False
        self.valid_seen = False
        self.set_ready = _writer(_signal(dut, f"{name}__ready"))
        self.is_valid = _bit_reader(_signal(dut, f"{name}__valid"))
        self.payload = _reader(_signal(dut, f"{name}__payload"))
        self.draw = random.Random(f"{seed}:{name}").random if ready_prob < 1.0 else None
        self.ready_prob = ready_prob


class _Streamer:
    """Moves the words, one :meth:`drive` and one :meth:`sample` callback per cycle."""

    def __init__(self, dut, job):
        self.clk = _signal(dut, "clk")._handle
        self.watchdog = job["watchdog"]
        self.max_cycles = job["max_cycles"]
        seed = job["seed"]
        self.sources = [_Source(dut, name, [int(word, 16) for word in words], job["valid_prob"], seed)
                        for name, words in job["inputs"].items()]
        self.sinks = [_Sink(dut, name, count, job["ready_prob"], seed) for name, count in job["outputs"].items()]
        self.pending = sum(len(s.words) for s in self.sources) + sum(s.count for s in self.sinks)
        self.cycle = 0
        self.last_move = 0
        self.done = self.pending == 0
        self.stop = None
        self.error = None
        self.started = self.finished = time.perf_counter()

    def drive(self):
        """Just after a rising edge: set the inputs of the new cycle."""
        try:
            for source in self.sources:
                if not source.offered and source.sent < len(source.words):
                    if source.draw is None or source.draw() < source.valid_prob:
                        source.set_payload(source.words[source.sent])
                        source.offered = True
                        source.arrivals.append(self.cycle)
                if source.offered != source.valid_high:
                    source.set_valid(int(source.offered))
                    source.valid_high = source.offered
            for sink in self.sinks:
                ready = len(sink.words) < sink.count and (sink.draw is None or sink.draw() < sink.ready_prob)
                if ready != sink.ready_high:
                    sink.set_ready(int(ready))
                    sink.ready_high = ready
            simulator.register_readonly_callback(self.sample)
        except Exception:
            self._fail()

    def sample(self):
        """In the ReadOnly phase: record the words that move at the coming rising edge."""
        try:
            cycle = self.cycle
            moved = False
            for source in self.sources:
                if source.offered and source.is_ready():
                    source.accepts.append(cycle)
                    source.sent += 1
                    source.offered = False
                    self.pending -= 1
                    moved = True
            for sink in self.sinks:
                if sink.ready_high:
                    sink.valid_seen = sink.is_valid()
                    if sink.valid_seen:
                        sink.words.append(sink.payload())
                        sink.emits.append(cycle)
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
            for source in self.sources:
                source.set_valid(0)
            for sink in self.sinks:
                sink.set_ready(0)
        except Exception:
            self._fail()
        self.done = True

    def _fail(self):
        self.error = traceback.format_exc()
        self.finished = time.perf_counter()
        self.done = True

    def report(self):
        """Words moved per port, and why each unfinished port is stuck."""
        parts = []
        for source in self.sources:
            state = "done" if source.sent == len(source.words) else (
                "stalled: valid high, ready low" if source.offered else "stalled: not offering")
            parts.append(f"input {source.name}: {source.sent}/{len(source.words)} words accepted ({state})")
        for sink in self.sinks:
            state = "done" if len(sink.words) == sink.count else (
                "stalled: valid high, ready low" if sink.valid_seen else "stalled: waiting for valid")
            parts.append(f"output {sink.name}: {len(sink.words)}/{sink.count} words taken ({state})")
        return "; ".join(parts)


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
    while not streamer.done:
        await Timer(_POLL_CYCLES * _CLOCK_STEPS, unit="step")
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

"""Run Amaranth-generated Verilog in Verilator under cocotb, streaming words through its stream ports.

:func:`run_verilog` compiles the design (or reuses a cached model, see :mod:`sim.verilator`),
writes the job to a JSON file, runs the cocotb test :mod:`sim.cocotb_streams` in the simulator and
reads back every transfer with its cycle number. A stream port ``x`` of an Amaranth component is
the Verilog ports ``x__payload``, ``x__valid`` and ``x__ready``; the design is clocked by ``clk``
and reset by ``rst``.
"""

import json
import shutil
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from .cocotb_streams import JOB_ENV, PROGRESS_PREFIX
from .progress import progress_bar
from .verilator import build_model, run_test

__all__ = ["run_verilog", "VerilogRun", "SimulationError", "Deadlock", "CycleLimitExceeded", "ExtraOutput"]

#: Cycles without a moved stream word after which a run counts as deadlocked: longer than any
#: core's legitimate silence (a MatVec pass over a 256-wide layer, a deep pipeline's fill).
WATCHDOG_CYCLES = 20_000

RESET_CYCLES = 4


class SimulationError(RuntimeError):
    """The simulation did not complete; the message carries the cocotb error or the simulator log.

    ``status`` holds the requested status signals as read when the simulation stopped (empty
    when it did not get that far), so a caller can say which of its parts were blocked.
    """

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = dict(status or {})


class Deadlock(SimulationError):
    """No stream word moved for ``watchdog`` cycles while words were still expected."""


class CycleLimitExceeded(SimulationError):
    """The words were still streaming after ``max_cycles`` cycles."""


class ExtraOutput(SimulationError):
    """An output stream gave more words than expected (within ``drain_cycles`` after the last)."""


@dataclass
class VerilogRun:
    """What one :func:`run_verilog` call observed.

    Cycle numbers count clock cycles from the end of reset (cycle 0); a word moves in cycle ``c``
    when ``valid`` and ``ready`` are both high during ``c``.

    Attributes
    ----------
    outputs : dict of str to list of int
        The words taken from each output stream, in order (unsigned payload bits).
    cycles : int
        ``last_output - first_accept + 1``: the cycles from the first accepted input word to the
        last output word, both included.
    first_accept, last_output : int
        Cycle of the first input word accepted on any port, and of the last output word taken.
        Without inputs ``first_accept`` is 0; without outputs ``last_output`` is the last accept.
    accepts : dict of str to list of int
        For each input port, the cycle each of its words was accepted.
    arrivals : dict of str to list of int
        For each input port, the cycle each of its words was first offered (``valid`` rose); with
        ``accepts`` this is what :meth:`cores.TimingContract.schedule` needs.
    emits : dict of str to list of int
        For each output port, the cycle each of its words was taken.
    status : dict of str to int
        Final value of each requested plain output signal, read two cycles after the last word.
    wall_seconds : float
        Time spent running the simulator (process start to results), build excluded.
    build_seconds : float
        Time spent compiling the model; 0 when it came from the cache.
    cached : bool
        Whether the compiled model came from the cache.
    simulated_cycles : int
        Cycles simulated after reset, until the last word moved.
    loop_seconds : float
        Time the streaming loop took inside the simulator.
    """

    outputs: dict
    cycles: int
    first_accept: int
    last_output: int
    accepts: dict
    arrivals: dict
    emits: dict
    status: dict
    wall_seconds: float
    build_seconds: float
    cached: bool
    simulated_cycles: int
    loop_seconds: float

    @property
    def cycles_per_second(self):
        """Simulation speed of the streaming loop."""
        return self.simulated_cycles / self.loop_seconds if self.loop_seconds > 0 else float("inf")


def run_verilog(verilog: str, *, top: str = "top", inputs: dict, outputs: dict, status: tuple = (),
                valid_prob: float = 1.0, ready_prob: float = 1.0, seed: int = 0, watchdog: int = WATCHDOG_CYCLES,
                max_cycles: int = 10_000_000, drain_cycles: int = 64, build_dir=None, trace=None,
                progress: bool = False) -> VerilogRun:
    """Stream words through a Verilog design in Verilator and record when each one moved.

    Parameters
    ----------
    verilog : str
        Verilog source text, e.g. ``amaranth.back.verilog.convert(component, name="top")``.
    top : str
        Name of the top module.
    inputs : dict of str to list of int, or list of such dicts
        For each input stream port, the payload words to send in order, as unsigned integers of
        the payload's width (pack signed lanes first, e.g. with ``cores.testing.pack_lanes``).
        All ports stream at once, each on its own. A list of dicts is a sequence of *phases*: no
        word of a phase is offered before the design accepted every word of the phases before it
        (a weight load, then a batch, then another load and batch, say).
    outputs : dict of str to int
        For each output stream port, how many words to collect.
    status : tuple of str
        Plain output signals (e.g. ``"overflow"``) whose final values to return.
    valid_prob : float
        Probability, per cycle, that a source that is not offering a word starts offering the
        next one (1: no valid-gaps). An offered word stays valid until it is accepted.
    ready_prob : float
        Probability that a sink is ready in a given cycle (1: no back-pressure).
    seed : int
        Seed of the valid-gap and back-pressure patterns; the same seed gives the same run.
    watchdog : int
        Raise :class:`Deadlock` when no word moves on any port for this many cycles.
    max_cycles : int
        Raise :class:`CycleLimitExceeded` when words are still expected after this many cycles.
    drain_cycles : int
        After the expected words, keep every output ready this many cycles and raise
        :class:`ExtraOutput` if any word comes.
    build_dir : path, optional
        The model cache directory; default ``$INRARCH_CACHE/verilator`` or
        ``~/.cache/inrarch/verilator``. A design that was built before is not compiled again.
    trace : path, optional
        Record every signal's waveform into this FST file (open it in GTKWave or Surfer). The
        model is then built with tracing, a cache entry of its own.
    progress : bool
        Show progress bars on stderr: the build's compiler runs, then the output words taken.

    Returns
    -------
    VerilogRun

    Raises
    ------
    Deadlock, CycleLimitExceeded, SimulationError, sim.verilator.BuildError
    """
    phases = [inputs] if isinstance(inputs, dict) else list(inputs)
    inputs = {}
    for phase in phases:
        for name, words in phase.items():
            inputs.setdefault(name, []).extend(words)
    _check_arguments(inputs, outputs, valid_prob, ready_prob, watchdog, max_cycles)
    model = build_model(verilog, top, root=build_dir, trace=trace is not None, progress=progress)
    runs = model.directory / "runs"
    runs.mkdir(exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(dir=runs))
    job_path = run_dir / "job.json"
    result_path = run_dir / "result.json"
    job_path.write_text(json.dumps({
        "inputs": {name: [format(int(word), "x") for word in words] for name, words in inputs.items()},
        "phases": [{name: len(words) for name, words in phase.items()} for phase in phases],
        "outputs": {name: int(count) for name, count in outputs.items()},
        "status": list(status),
        "valid_prob": float(valid_prob),
        "ready_prob": float(ready_prob),
        "seed": int(seed),
        "watchdog": int(watchdog),
        "max_cycles": int(max_cycles),
        "drain_cycles": int(drain_cycles),
        "reset_cycles": RESET_CYCLES,
        "result": str(result_path),
        "progress": progress,
    }))

    results_xml = run_dir / "results.xml"
    log = run_dir / "sim.log"
    start = time.perf_counter()
    failure = None
    with progress_bar(f"simulating {top}", sum(outputs.values()), enabled=progress, unit="word") as bar:
        def follow(line):
            if not line.startswith(PROGRESS_PREFIX):
                return True
            bar.update(int(line[len(PROGRESS_PREFIX):]) - bar.n)
            return False

        try:
            run_test(model, "sim.cocotb_streams", test_dir=run_dir, env={JOB_ENV: str(job_path)}, trace=trace,
                     on_line=follow)
        except (SystemExit, RuntimeError) as error:  # the runner exits when a test fails under pytest
            failure = f"cocotb runner stopped: {error!r}"
    wall_seconds = time.perf_counter() - start

    result = json.loads(result_path.read_text()) if result_path.is_file() else None
    if result is None or "error" in result or failure is not None:
        details = ((result or {}).get("error") or _xml_failures(results_xml)
                   or f"{failure or 'no result'}; log:\n{_tail(log)}")
        raise SimulationError(f"simulation of {top} failed (files kept in {run_dir}):\n{details}")
    if result["stop"] is not None:
        error = Deadlock if result["stop"]["kind"] == "deadlock" else CycleLimitExceeded
        shutil.rmtree(run_dir, ignore_errors=True)
        raise error(result["stop"]["message"],
                    status={name: int(value, 16) for name, value in result["status"].items()})
    shutil.rmtree(run_dir, ignore_errors=True)
    extra = {name: count for name, count in result["extra_words"].items() if count}
    if extra:
        raise ExtraOutput(f"{top} gave words beyond the expected ones within {drain_cycles} cycles: "
                          + ", ".join(f"{name}: {count} more than {outputs[name]}" for name, count in extra.items()),
                          status={name: int(value, 16) for name, value in result["status"].items()})

    accepts, emits = result["accepts"], result["emits"]
    first_accept = min((times[0] for times in accepts.values() if times), default=0)
    last_output = max((times[-1] for times in emits.values() if times),
                      default=max((times[-1] for times in accepts.values() if times), default=0))
    return VerilogRun(
        outputs={name: [int(word, 16) for word in words] for name, words in result["outputs"].items()},
        cycles=last_output - first_accept + 1,
        first_accept=first_accept,
        last_output=last_output,
        accepts=accepts,
        arrivals=result["arrivals"],
        emits=emits,
        status={name: int(value, 16) for name, value in result["status"].items()},
        wall_seconds=wall_seconds,
        build_seconds=model.build_seconds,
        cached=model.cached,
        simulated_cycles=result["simulated_cycles"],
        loop_seconds=result["loop_seconds"],
    )


def _check_arguments(inputs, outputs, valid_prob, ready_prob, watchdog, max_cycles):
    if not inputs and not outputs:
        raise ValueError("nothing to stream: give at least one input or output port")
    for name, words in inputs.items():
        negative = next((word for word in words if int(word) < 0), None)
        if negative is not None:
            raise ValueError(f"input {name}: words are unsigned payload bits, got {negative}; "
                             "pack signed lanes first (e.g. cores.testing.pack_lanes)")
    for name, count in outputs.items():
        if int(count) < 0:
            raise ValueError(f"output {name}: cannot collect {count} words")
    for label, probability in (("valid_prob", valid_prob), ("ready_prob", ready_prob)):
        if not 0.0 < probability <= 1.0:
            raise ValueError(f"{label} must be in (0, 1], not {probability}")
    if watchdog < 1 or max_cycles < 1:
        raise ValueError("watchdog and max_cycles must be positive")


def _xml_failures(path):
    """The failure messages of a cocotb results file, or None."""
    try:
        tree = ElementTree.parse(path)
    except (OSError, ElementTree.ParseError):
        return None
    messages = []
    for case in tree.iter("testcase"):
        for problem in [*case.iter("failure"), *case.iter("error")]:
            text = problem.text or problem.get("message")
            messages.append(f"cocotb test {case.get('name')} failed: {text}")
    return "\n".join(messages) or None


def _tail(path, lines=30):
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"

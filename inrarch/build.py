"""``python -m inrarch.build``: compile a model's gradients for a board and write the outputs.

Writes ``OUT/top.v`` (the design), ``OUT/report.json`` and, with ``--simulate``, runs the Verilog
in Verilator on random inputs from the domain and compares it with float64 torch. Output is
written to a temporary directory beside ``OUT`` and moved into place only when everything
succeeded, so a failed build leaves no half-written directory.

Exit codes: 0 success, 2 user error (one line on stderr), 1 internal error.
"""

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from boards import get_board

from . import derivatives, models
from .design import compile as compile_design
from .errors import InrarchError

__all__ = ["main", "build"]


class _Progress:
    def __init__(self, stream):
        self.stream = stream
        self.start = time.perf_counter()

    def step(self, text):
        self.stream.write(f"[{time.perf_counter() - self.start:7.1f}s] {text}\n")
        self.stream.flush()


def _load_model(spec):
    """``path.py:attr`` → the module or callable it names (called if it builds the model)."""
    path, _, attr = spec.partition(":")
    if not attr:
        raise InrarchError(f"--model {spec!r}: expected path.py:attribute")
    if not Path(path).is_file():
        raise InrarchError(f"--model: no such file {path!r}")
    module_spec = importlib.util.spec_from_file_location("inrarch_user_model", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        raise InrarchError(f"--model: loading {path} failed: {type(error).__name__}: {error}") from error
    if not hasattr(module, attr):
        raise InrarchError(f"--model: {path} has no attribute {attr!r}")
    model = getattr(module, attr)
    if not isinstance(model, torch.nn.Module) and callable(model):
        model = model()
    if not isinstance(model, torch.nn.Module):
        raise InrarchError(f"--model: {spec} is not a torch.nn.Module nor a function returning one")
    return model.double().eval()


def _parser():
    parser = argparse.ArgumentParser(prog="python -m inrarch.build", description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="alveo_u280", help="target board (default: alveo_u280)")
    parser.add_argument("--order", type=int, default=1, help="highest derivative order (default: 1)")
    parser.add_argument("--batch", type=int, default=64, help="samples per batch (default: 64)")
    parser.add_argument("--width", type=int, default=256, help="hidden width of the default SIREN")
    parser.add_argument("--depth", type=int, default=4, help="sine layers of the default SIREN")
    parser.add_argument("--w0", type=float, default=30.0, help="w0 of the default SIREN")
    parser.add_argument("--model", help="path.py:attr naming a torch.nn.Module (or a function returning one)")
    parser.add_argument("--format", help="force one number format on every edge, e.g. q16.16")
    parser.add_argument("--clock-mhz", type=float, default=300.0, help="clock for latency figures (default: 300)")
    parser.add_argument("--max-parallel", type=int, help="cap on multipliers per matmul")
    parser.add_argument("--out", default="build", help="output directory (default: build)")
    parser.add_argument("--simulate", action="store_true", help="run the Verilog in Verilator and check it")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation inputs")
    return parser


def build(args, progress):
    """Run the build described by parsed ``args``; returns the report dict."""
    try:
        get_board(args.board)
    except KeyError as error:
        raise InrarchError(error.args[0]) from None
    if args.order < 1:
        raise InrarchError(f"--order must be at least 1, not {args.order}")
    if args.batch < 1:
        raise InrarchError(f"--batch must be at least 1, not {args.batch}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InrarchError(f"--out {out} exists and is not a directory")
    parent = out.resolve().parent
    if not parent.exists():
        raise InrarchError(f"--out: parent directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise InrarchError(f"--out: cannot write to {parent}")

    if args.model:
        model = _load_model(args.model)
        in_features = next(m for m in model.modules() if isinstance(m, torch.nn.Linear)).in_features
    else:
        model = models.siren(in_features=2, hidden=args.width, layers=args.depth, out_features=3, w0=args.w0, seed=0)
        in_features = 2
    fn = derivatives(model, args.order)
    progress.step(f"capturing order-{args.order} derivatives and compiling")
    design = compile_design(fn, torch.zeros(args.batch, in_features, dtype=torch.float64),
                            format=args.format, clock_mhz=args.clock_mhz, max_parallel=args.max_parallel)
    progress.step(f"solved: {design.report['cycles_predicted']} cycles for batch {args.batch}; writing Verilog")
    verilog = design.verilog()
    report = dict(design.report)
    report["board"] = args.board
    report["order"] = args.order
    report["verilog_seconds"] = round(design.timings.get("verilog_seconds", 0.0), 3)
    if args.simulate:
        progress.step("building and running the Verilog in Verilator")
        rng = np.random.default_rng(args.seed)
        x = torch.tensor(rng.uniform(-1.0, 1.0, size=(args.batch, in_features)))
        result = design.simulate(x)
        reference = fn(x)
        errors = [float(np.max(np.abs(got - ref.detach().numpy())) / max(1e-12, float(ref.abs().max())))
                  for got, ref in zip(result.outputs, reference)]
        report["cycles_simulated"] = result.cycles
        report["max_error"] = max(errors)
        report["max_error_per_output"] = errors
        report["overflow"] = result.overflow

    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=parent))
    try:
        (staging / "top.v").write_text(verilog)
        (staging / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _summary(report, out):
    rows = [
        ("board", report["board"]),
        ("order / batch", f"{report['order']} / {report['batch']}"),
        ("cycles (predicted)", report["cycles_predicted"]),
        ("cycles (simulated)", report.get("cycles_simulated", "-")),
        ("latency", f"{report['latency_us']:.2f} us at {report['clock_mhz']:g} MHz"),
        ("pace", f"{report['period_cycles']} cycles/sample (bound by {report['critical_core']})"),
        ("multipliers", report["multipliers"]),
        ("FIFO memory", f"{report['fifo_bits'] / 8 / 1024:.1f} KiB in {report['fifo_count']} FIFOs"),
        ("weights", f"{report['weight_bits'] / 8 / 1024:.1f} KiB in {report['weight_matrices']} matrices"),
        ("max error", f"{report['max_error']:.2e} of max|ref|" if "max_error" in report else "-"),
        ("output", str(out)),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    progress = _Progress(sys.stderr)
    try:
        report = build(args, progress)
    except InrarchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    progress.step("done")
    print(_summary(report, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

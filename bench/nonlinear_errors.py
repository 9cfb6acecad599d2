# amaranth: UnusedElaboratable=no
"""Measured error of the nonlinear cores' integer models, and their tables, against float64.

    python -m bench.nonlinear_errors

For every configuration of :data:`CASES` (core, input and output format, scale, table order, the
inputs), the worst and mean ``|reference - float64|`` in ulps of the output format, with the
measurement the tests assert on (``tests/cores/test_nonlinear.py``: ``ulp_errors`` and its input
sets), the table's entries, order and bits per entry, the DSP48E2 slices and the latency. Then,
for two cores, each table order ``order=`` can choose (:data:`ORDER_CHOICES`). Records both under
``"nonlinear_errors"`` in ``bench/results.json`` (the tables of ``docs/nonlinear.md``).
"""

import argparse
import importlib.util
import sys
import time

from cores.fixed import Q
from cores.nonlinear import Abs, Cos, Exp, Relu, Sigmoid, Sin, Softplus, Sqrt, Step, Tanh
from bench import registry, results
from inrarch.resources import core_dsps

RANDOM = 1_000_000
PER_LENGTH = 16_000
CHOICE_INPUTS = 300_000
SEED = 1

# (core, input format, output format, scale, order, inputs): inputs "all", "lengths" (every bit
# length of sqrt's normalization), or a real span of random inputs (None: the whole format).
CASES = [
    (Sin, "q4.8", "q2.14", 1.0, None, "all"), (Sin, "q4.8", "q2.30", 30.0, None, "all"),
    (Sin, "q16.16", "q2.14", 30.0, None, None), (Sin, "q16.16", "q2.22", 30.0, None, None),
    (Sin, "q16.16", "q2.30", 30.0, None, None), (Cos, "q16.16", "q2.30", 30.0, None, None),
    (Sin, "q12.20", "q2.30", 30.0, None, None), (Sin, "q16.16", "q2.30", 30.0, 3, None),
    (Tanh, "q4.8", "q2.14", 1.0, None, "all"), (Tanh, "q8.24", "q2.16", 1.0, None, 10.0),
    (Tanh, "q8.24", "q2.24", 1.0, None, 12.0), (Tanh, "q8.24", "q2.24", 1.0, 2, 12.0),
    (Tanh, "q8.24", "q2.30", 1.0, None, 12.0),
    (Sigmoid, "q4.8", "q2.14", 1.0, None, "all"), (Sigmoid, "q8.24", "q2.16", 1.0, None, 14.0),
    (Sigmoid, "q8.24", "q2.24", 1.0, None, 20.0), (Sigmoid, "q8.24", "q2.30", 1.0, None, 22.0),
    (Exp, "q4.8", "q8.16", 1.0, None, "all"), (Exp, "q4.12", "q2.14", -1.0, None, "all"),
    (Exp, "q8.24", "q8.24", 1.0, None, 8.0), (Exp, "q8.24", "q4.28", 1.0, None, 8.0),
    (Exp, "q12.20", "q16.16", 1.0, None, 16.0), (Exp, "q8.24", "q2.30", 1.0, None, 2.0),
    (Softplus, "q4.8", "q4.12", 1.0, None, "all"), (Softplus, "q4.8", "q8.24", 1.0, None, "all"),
    (Softplus, "q8.19", "q8.19", 1.0, None, None), (Softplus, "q8.24", "q8.24", 1.0, None, 20.0),
    (Softplus, "q8.24", "q8.24", 1.0, None, None), (Softplus, "q8.24", "q8.24", 1.0, 3, 20.0),
    (Softplus, "q8.24", "q2.24", 1.0, None, 20.0), (Softplus, "q8.24", "q4.28", 1.0, None, 20.0),
    (Sqrt, "q4.8", "q4.12", 1.0, None, "all"), (Sqrt, "q4.12", "q2.14", 1.0, None, "all"),
    (Sqrt, "q8.19", "q4.23", 1.0, None, "lengths"), (Sqrt, "q8.24", "q4.28", 1.0, None, "lengths"),
    (Sqrt, "q8.24", "q4.28", 1.0, None, None), (Sqrt, "q8.24", "q4.28", 1.0, 3, "lengths"),
    (Sqrt, "q16.16", "q8.24", 1.0, None, "lengths"), (Sqrt, "q8.24", "q2.30", 1.0, None, "lengths"),
    (Relu, "q16.16", "q16.16", 30.0, None, None), (Relu, "q4.8", "q2.14", -0.3, None, "all"),
    (Step, "q4.8", "q2.14", 1.0, None, "all"),
    (Abs, "q16.16", "q16.16", -30.0, None, None), (Abs, "q4.8", "q2.14", 0.3, None, "all"),
]
# The registry's other nonlinear cores, at default formats (bench.registry).
CASES += [case for cls in registry.missing(CASES)
          for case in ((cls, *registry.small_formats(cls), 1.0, None, "all"),
                       (cls, *registry.wide_formats(cls), 1.0, None, registry.SPAN))]

# (core, input format, output format, scale, span of the random inputs): every ``order=``.
ORDER_CHOICES = [(Sin, "q16.16", "q2.30", 30.0, None), (Tanh, "q8.24", "q2.24", 1.0, 12.0)]


def _measurement():
    """``tests/cores/test_nonlinear.py``, whose error measurement and input sets these are."""
    path = results.REPOSITORY / "tests" / "cores" / "test_nonlinear.py"
    spec = importlib.util.spec_from_file_location("test_nonlinear", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(cls, in_format, out_format, scale, order):
    kwargs = {"order": order} if order is not None else {}
    return cls(Q.parse(in_format), Q.parse(out_format), scale=scale, **kwargs)


def _describe(core):
    """Table, DSPs and latency of ``core``."""
    table = getattr(core, "table", None)
    return {"entries": table.segments if table else None, "table_order": table.order if table else None,
            "entry_bits": table.entry_bits if table else None, "dsps": core_dsps(core), "latency": core.latency}


def _errors(measure, core, raw):
    errors = measure.ulp_errors(core, raw)
    return {"inputs_measured": len(raw), "worst_ulp": round(float(errors.max()), 3),
            "mean_ulp": round(float(errors.mean()), 3)}


def _inputs(measure, fmt, kind):
    if kind == "all":
        return measure.every_input(fmt)
    if kind == "lengths":
        return measure.inputs_of_every_length(fmt, PER_LENGTH, seed=SEED)
    return measure.random_inputs(fmt, RANDOM, seed=SEED, span=kind)


def main(argv=None):
    argparse.ArgumentParser(prog="python -m bench.nonlinear_errors",
                            description=__doc__.split("\n\n")[0]).parse_args(argv)
    measure = _measurement()
    rows = []
    for cls, in_format, out_format, scale, order, kind in CASES:
        start = time.perf_counter()
        core = _build(cls, in_format, out_format, scale, order)
        raw = _inputs(measure, core.in_format, kind)
        rows.append({"core": cls.__name__, "in": in_format, "out": out_format, "scale": scale, "order": order,
                     "inputs": kind, **_describe(core), **_errors(measure, core, raw)})
        print(rows[-1], f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    choices = []
    for cls, in_format, out_format, scale, span in ORDER_CHOICES:
        for order in (None, 1, 2, 3):
            row = {"core": cls.__name__, "in": in_format, "out": out_format, "scale": scale, "order": order}
            try:
                core = _build(cls, in_format, out_format, scale, order)
            except ValueError as error:
                choices.append({**row, "refused": str(error)})
                continue
            raw = measure.random_inputs(core.in_format, CHOICE_INPUTS, seed=SEED, span=span)
            choices.append({**row, **_describe(core), **_errors(measure, core, raw)})
            print(choices[-1], file=sys.stderr, flush=True)
    results.record("nonlinear_errors", {"rows": rows, "order_choices": choices},
                   inputs={"random": RANDOM, "per_length": PER_LENGTH, "choice_inputs": CHOICE_INPUTS, "seed": SEED})


if __name__ == "__main__":
    main()

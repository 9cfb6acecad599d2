"""Fuzz the compiler end to end: random small MLPs and their gradients, simulated in Verilator.

Each case is a small model (SIREN with a random w0, or a tanh or sigmoid MLP), a derivative order
and a seed. It is compiled, run in Verilator on random inputs from the domain, once without stalls
and once with random valid-gaps and back-pressure, and checked:

- every output within ``TOLERANCE × max|ref|`` of float64 torch (per output);
- the unstalled run takes exactly the predicted cycles and does not overflow;
- the stalled run gives bit-identical output words.

A :class:`inrarch.CompileError` passes only when its message names a feature the compiler does
not support (:data:`UNSUPPORTED`); any other error is a failure. ``tests/test_fuzz.py`` draws a few
cases with hypothesis; this script is the long mode::

    python bench/fuzz.py --examples 200 --seed 0

Every case costs a Verilator build (tens of seconds to a few minutes), so 200 cases take hours.
"""

import argparse
import re
import sys
import time
import traceback
from dataclasses import asdict, dataclass

import numpy as np
import torch

import inrarch
from inrarch.emulate import relative_errors

ACTIVATIONS = ("sin", "tanh", "sigmoid")
W0_RANGE = (1.0, 60.0)
WIDTHS = (4, 12)
DEPTHS = (1, 2)
IN_FEATURES = (1, 3)
OUT_FEATURES = (1, 3)
ORDERS = (1, 2)
TOLERANCE = 1e-3
BATCH = 4
#: Compile errors that name a genuinely unsupported feature; none is expected for these models.
UNSUPPORTED = re.compile(r"unsupported|not supported|cannot be compiled")


@dataclass(frozen=True)
class Case:
    """One fuzz case: ``activation`` "sin" is a SIREN with first-layer and hidden ``w0``."""

    activation: str
    w0: float
    width: int
    depth: int
    in_features: int
    out_features: int
    order: int
    seed: int
    valid_prob: float
    ready_prob: float

    def model(self):
        if self.activation == "sin":
            return inrarch.models.siren(self.in_features, self.width, self.depth, self.out_features, self.w0, self.seed)
        return inrarch.models.mlp(self.in_features, self.width, self.depth, self.out_features, self.activation,
                                  self.seed)

    def describe(self):
        act = f"sin(w0={self.w0:.3g})" if self.activation == "sin" else self.activation
        return (f"{act} {self.in_features}→{self.width}×{self.depth}→{self.out_features} order {self.order} "
                f"seed {self.seed}")


@dataclass
class Outcome:
    """``status``: "pass", "unsupported" (an acceptable CompileError) or "fail"."""

    status: str
    detail: str = ""
    errors: tuple = ()     # per output: max|got - ref| / max|ref|
    cycles: int = 0
    seconds: float = 0.0


def random_case(rng):
    """A case drawn uniformly from the fuzzed ranges with the numpy Generator ``rng``."""
    return Case(activation=str(rng.choice(ACTIVATIONS)),
                w0=round(float(rng.uniform(*W0_RANGE)), 3),
                width=int(rng.integers(WIDTHS[0], WIDTHS[1] + 1)),
                depth=int(rng.integers(DEPTHS[0], DEPTHS[1] + 1)),
                in_features=int(rng.integers(IN_FEATURES[0], IN_FEATURES[1] + 1)),
                out_features=int(rng.integers(OUT_FEATURES[0], OUT_FEATURES[1] + 1)),
                order=int(rng.integers(ORDERS[0], ORDERS[1] + 1)),
                seed=int(rng.integers(0, 2**31)),
                valid_prob=round(float(rng.uniform(0.2, 1.0)), 2),
                ready_prob=round(float(rng.uniform(0.2, 1.0)), 2))


def run_case(case):
    """Compile, simulate and check ``case``; never raises for a problem with the design."""
    start = time.perf_counter()
    outcome = _check(case)
    outcome.seconds = time.perf_counter() - start
    return outcome


def _check(case):
    fn = inrarch.derivatives(case.model(), case.order)
    try:
        design = inrarch.compile(fn, torch.zeros(BATCH, case.in_features, dtype=torch.float64))
    except inrarch.CompileError as error:
        return Outcome("unsupported" if UNSUPPORTED.search(str(error)) else "fail", f"CompileError: {error}")
    except Exception:
        return Outcome("fail", "compile crashed: " + traceback.format_exc(limit=-3))
    x = torch.tensor(np.random.default_rng(case.seed).uniform(-1.0, 1.0, size=(BATCH, case.in_features)))
    try:
        run = design.simulate(x)
        stalled = design.simulate(x, valid_prob=case.valid_prob, ready_prob=case.ready_prob, seed=case.seed)
    except Exception:
        return Outcome("fail", "simulation crashed: " + traceback.format_exc(limit=-3))
    errors = relative_errors(run.outputs, fn(x))
    problems = [f"output {k} off by {e:.2e} of max|ref|" for k, e in enumerate(errors) if not e <= TOLERANCE]
    if run.overflow:
        problems.append(f"overflow in {run.overflow_op} core {run.overflow_core}")
    if run.cycles != design.report["cycles_predicted"]:
        problems.append(f"{run.cycles} cycles, {design.report['cycles_predicted']} predicted")
    if stalled.run.outputs != run.run.outputs:
        problems.append("stalls changed the output words")
    return Outcome("fail" if problems else "pass", "; ".join(problems), tuple(errors), run.cycles)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="cases to run (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the case generator (default 0)")
    args = parser.parse_args(argv)
    import warnings
    warnings.simplefilter("ignore", DeprecationWarning)

    rng = np.random.default_rng(args.seed)
    print(f"fuzzing {args.examples} cases, generator seed {args.seed}", flush=True)
    header = f"{'#':>4} {'case':<48} {'stalls v/r':>10} {'status':<11} {'worst err':>9} {'cycles':>6} {'s':>6}"
    print(header)
    print("-" * len(header), flush=True)
    counts, failures = {"pass": 0, "unsupported": 0, "fail": 0}, []
    for index in range(args.examples):
        case = random_case(rng)
        outcome = run_case(case)
        counts[outcome.status] += 1
        worst = f"{max(outcome.errors):.2e}" if outcome.errors else "-"
        print(f"{index:>4} {case.describe():<48} {case.valid_prob:>4}/{case.ready_prob:<5} {outcome.status:<11} "
              f"{worst:>9} {outcome.cycles:>6} {outcome.seconds:>6.1f}", flush=True)
        if outcome.status != "pass":
            print(f"     {outcome.detail}", flush=True)
            if outcome.status == "fail":
                failures.append((case, outcome))
    print(f"\n{counts['pass']} passed, {counts['fail']} failed, {counts['unsupported']} unsupported")
    for case, outcome in failures:
        print(f"FAIL {asdict(case)}: {outcome.detail}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

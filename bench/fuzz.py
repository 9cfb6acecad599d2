"""Fuzz the compiler end to end: random small models and their derivatives, simulated in Verilator.

Each case is a small model with one of the supported activations (a SIREN with a random w0, or an
MLP with cos, tanh, sigmoid, relu, softplus, gaussian, silu, elu or leaky relu), built float32 as a
user would, a quantity computed from it, a derivative order and a seed. Most cases compute the
model's value and derivatives (:func:`inrarch.derivatives`) and must compile; they are run in
Verilator on random inputs from the domain, once without stalls and once with random valid-gaps
and back-pressure, and checked:

- every output within ``TOLERANCE × max|ref|`` of float64 torch (:func:`inrarch.reference`);
- the unstalled run takes exactly the predicted cycles and does not overflow;
- the stalled run gives bit-identical output words.

The other cases are built to meet one of the refusals the README documents (a ``log``, a
derivative of ``sqrt`` or of a gradient norm): :meth:`Case.expected_refusal` names the refusal from
the case's own properties, and the case passes only when ``compile`` raises a
:class:`inrarch.CompileError` whose message is that refusal's (:data:`REFUSALS`). Any other
CompileError, a case that should be refused but compiles, and any crash are failures. One
exception: the gradient of a piecewise-linear net (relu, leaky relu) is piecewise constant, so
the derivative of its norm has a zero tangent that capture may fold away together with the
refused op (:meth:`Case.may_compile`); such a case that compiles is checked like any other.

``tests/test_fuzz.py`` draws a few cases with hypothesis; this script is the long mode::

    python -m bench.fuzz --examples 200 --seed 0

It prints one line per case, then ``N passed, M failed``, records the outcome under ``"fuzz"`` in
``bench/results.json`` and exits 1 when any case failed. ``--scheduler tcp://host:8786`` runs each
case as an independent task of that Dask cluster (its workers need this repository on their
``PYTHONPATH``); the cases are drawn, printed and recorded here, in their order, as they finish.
"""

import argparse
import contextlib
import json
import math
import re
import statistics
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.func import jacrev, vmap

import inrarch
from bench import results
from inrarch.emulate import relative_errors

#: Activations the README lists as supported; ``inrarch.models.mlp`` builds those in its own
#: ACTIVATIONS, the others are plain torch.nn modules.
ACTIVATIONS = ("sin", "cos", "tanh", "sigmoid", "relu", "softplus", "gaussian", "silu", "elu", "leaky_relu")
TORCH_ACTIVATIONS = {"silu": nn.SiLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}
#: What a case computes from its model, and how often it is drawn.
QUANTITIES = {"derivatives": 0.88, "gradient-norm": 0.06, "log": 0.03, "sqrt": 0.03}
W0_RANGE = (1.0, 60.0)
WIDTHS = (4, 12)
DEPTHS = (1, 2)
IN_FEATURES = (1, 4)
OUT_FEATURES = (1, 4)
ORDERS = (1, 3)
STALL_PROBABILITIES = (0.2, 1.0)
PIECEWISE_LINEAR = {"relu", "leaky_relu"}
#: Bound on a case's distinct partial derivatives (the value included) times its depth. The design,
#: and above all its Verilator build, grows with them: an order-3 derivative of a 4-input, 2-layer
#: silu MLP has 35 partials, 834 nodes and 8 MB of Verilog, about half an hour of build, while
#: the cases within the bound build in seconds to a few minutes. :func:`max_in_features` applies it.
MAX_PARTIALS_TIMES_DEPTH = 12
TOLERANCE = 1e-3
BATCH = 4

#: The documented refusals (README, "Python API") a case can be built to meet, and the message each gives.
REFUSALS = {
    "log": re.compile(r"^unsupported op torch\.log \(there is no log core\) at "),
    "derivative of a norm": re.compile(r"^unsupported op torch\.eq \(.*the derivative of a norm.*\) at "),
    "derivative of sqrt": re.compile(r"^division by a streamed tensor is not supported at "),
}


@dataclass(frozen=True)
class Case:
    """One fuzz case: ``activation`` "sin" is a SIREN whose layers all use ``w0``.

    ``quantity`` is what the compiled function computes from the model ``f``:

    - "derivatives": ``f`` and its derivatives up to ``order``;
    - "gradient-norm": ``|∇f|`` per sample, differentiated ``order - 1`` more times;
    - "log" and "sqrt": ``log(1 + f²)`` or ``sqrt(1 + f²)`` and their derivatives up to ``order``.
    """

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
    quantity: str = "derivatives"

    def model(self):
        """The model, deterministic from ``seed``."""
        if self.activation == "sin":
            return inrarch.models.siren(self.in_features, self.width, self.depth, self.out_features, self.w0, self.seed)
        if self.activation not in TORCH_ACTIVATIONS:
            return inrarch.models.mlp(self.in_features, self.width, self.depth, self.out_features, self.activation,
                                      self.seed)
        widths = [self.in_features] + [self.width] * self.depth
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            layers = [module for a, b in zip(widths, widths[1:])
                      for module in (nn.Linear(a, b), TORCH_ACTIVATIONS[self.activation]())]
            return nn.Sequential(*layers, nn.Linear(self.width, self.out_features))

    def function(self):
        """The function of ``x`` to compile."""
        model = self.model()
        if self.quantity == "derivatives":
            return inrarch.derivatives(model, self.order)
        if self.quantity == "gradient-norm":
            def gradient_norm(x):
                return torch.linalg.vector_norm(vmap(jacrev(model))(x), dim=(-2, -1))

            return gradient_norm if self.order == 1 else inrarch.derivatives(gradient_norm, self.order - 1)
        outer = {"log": torch.log, "sqrt": torch.sqrt}[self.quantity]
        return inrarch.derivatives(lambda x: outer(1 + model(x) ** 2), self.order)

    def expected_refusal(self):
        """The key in :data:`REFUSALS` of the refusal this case must meet, or None if it must compile."""
        if self.quantity == "log":
            return "log"
        if self.quantity == "sqrt":
            return "derivative of sqrt"
        if self.quantity == "gradient-norm" and self.order >= 2:
            return "derivative of a norm"
        return None

    def may_compile(self):
        """Whether the case may compile although it meets a refusal: a gradient norm of a
        piecewise-linear net, whose derivatives are identically zero."""
        return self.expected_refusal() == "derivative of a norm" and self.activation in PIECEWISE_LINEAR

    def describe(self):
        act = f"sin(w0={self.w0:.3g})" if self.activation == "sin" else self.activation
        return (f"{act} {self.in_features}→{self.width}×{self.depth}→{self.out_features} {self.quantity} "
                f"order {self.order} seed {self.seed}")


@dataclass
class Outcome:
    """``status``: "pass", "refused" (the expected documented refusal) or "fail"."""

    status: str
    detail: str = ""
    errors: tuple = ()     # per output: max|got - ref| / max|ref|
    cycles: int = 0
    seconds: float = 0.0


def max_in_features(order, depth):
    """The most inputs a case of ``order`` and ``depth`` may have within :data:`MAX_PARTIALS_TIMES_DEPTH`.

    A function of ``n`` inputs has ``comb(n + order, order)`` distinct partial derivatives up to ``order``.
    """
    fitting = [n for n in range(IN_FEATURES[0], IN_FEATURES[1] + 1)
               if math.comb(n + order, order) * depth <= MAX_PARTIALS_TIMES_DEPTH]
    return max(fitting, default=IN_FEATURES[0])


def random_case(rng):
    """A case drawn from the fuzzed ranges with the numpy Generator ``rng``."""
    order = int(rng.integers(ORDERS[0], ORDERS[1] + 1))
    depth = int(rng.integers(DEPTHS[0], DEPTHS[1] + 1))
    return Case(activation=str(rng.choice(ACTIVATIONS)),
                w0=round(float(rng.uniform(*W0_RANGE)), 3),
                width=int(rng.integers(WIDTHS[0], WIDTHS[1] + 1)),
                depth=depth,
                in_features=int(rng.integers(IN_FEATURES[0], max_in_features(order, depth) + 1)),
                out_features=int(rng.integers(OUT_FEATURES[0], OUT_FEATURES[1] + 1)),
                order=order,
                seed=int(rng.integers(0, 2**31)),
                valid_prob=round(float(rng.uniform(*STALL_PROBABILITIES)), 2),
                ready_prob=round(float(rng.uniform(*STALL_PROBABILITIES)), 2),
                quantity=str(rng.choice(list(QUANTITIES), p=list(QUANTITIES.values()))))


def classify_compile_error(case, error):
    """The outcome of ``case`` when ``compile`` raised ``error``: "refused" only for its expected refusal."""
    expected = case.expected_refusal()
    message = str(error)
    if expected is None:
        return Outcome("fail", f"unexpected CompileError: {message}")
    if REFUSALS[expected].search(message):
        return Outcome("refused", f"refused ({expected}): {message}")
    return Outcome("fail", f"expected the {expected!r} refusal, got CompileError: {message}")


def run_case(case):
    """Compile, simulate and check ``case``; never raises for a problem with the design."""
    start = time.perf_counter()
    outcome = _check(case)
    outcome.seconds = time.perf_counter() - start
    return outcome


def _check(case):
    fn = case.function()
    try:
        design = inrarch.compile(fn, torch.zeros(BATCH, case.in_features))
    except inrarch.CompileError as error:
        return classify_compile_error(case, error)
    except Exception:
        return Outcome("fail", "compile crashed: " + traceback.format_exc(limit=-3))
    if case.expected_refusal() is not None and not case.may_compile():
        return Outcome("fail", f"compiled, but the {case.expected_refusal()!r} refusal was expected")
    x = torch.tensor(np.random.default_rng(case.seed).uniform(-1.0, 1.0, size=(BATCH, case.in_features)),
                     dtype=torch.float32)
    try:
        run = design.simulate(x)
        stalled = design.simulate(x, valid_prob=case.valid_prob, ready_prob=case.ready_prob, seed=case.seed)
    except Exception:
        return Outcome("fail", "simulation crashed: " + traceback.format_exc(limit=-3))
    errors = relative_errors(run.outputs, inrarch.reference(fn, x))
    problems = [f"output {k} off by {e:.2e} of max|ref|" for k, e in enumerate(errors) if not e <= TOLERANCE]
    if run.overflow:
        problems.append(f"overflow in {run.overflow_op} core {run.overflow_core}")
    if run.cycles != design.report["cycles_predicted"]:
        problems.append(f"{run.cycles} cycles, {design.report['cycles_predicted']} predicted")
    if stalled.run.outputs != run.run.outputs:
        problems.append("stalls changed the output words")
    return Outcome("fail" if problems else "pass", "; ".join(problems), tuple(errors), run.cycles)


def summarize(cases, outcomes, seconds):
    """The figures :func:`main` records: counts, failures, the worst error, the wall times, and
    each case's outcome (so that ``--resume`` can continue an interrupted run)."""
    simulated = [(case, outcome) for case, outcome in zip(cases, outcomes) if outcome.errors]
    worst_case, worst = max(simulated, key=lambda pair: max(pair[1].errors), default=(None, None))
    per_case = [outcome.seconds for outcome in outcomes]
    return {
        "passed": sum(outcome.status == "pass" for outcome in outcomes),
        "refused_as_expected": sum(outcome.status == "refused" for outcome in outcomes),
        "failed": sum(outcome.status == "fail" for outcome in outcomes),
        "failures": [{"case": asdict(case), "description": case.describe(), "detail": outcome.detail}
                     for case, outcome in zip(cases, outcomes) if outcome.status == "fail"],
        "worst_error": max(worst.errors) if worst else None,
        "worst_error_case": worst_case.describe() if worst_case else None,
        "seconds": round(seconds, 1),
        "seconds_per_case": {"mean": round(statistics.mean(per_case), 1), "median": round(statistics.median(per_case), 1),
                             "max": round(max(per_case), 1)},
        "completed": len(outcomes),
        "outcomes": [asdict(outcome) for outcome in outcomes],
    }


def _inputs(args):
    return {"examples": args.examples, "seed": args.seed, "activations": list(ACTIVATIONS), "quantities": QUANTITIES,
            "w0": list(W0_RANGE), "widths": list(WIDTHS), "depths": list(DEPTHS), "in_features": list(IN_FEATURES),
            "out_features": list(OUT_FEATURES), "orders": list(ORDERS),
            "stall_probabilities": list(STALL_PROBABILITIES), "max_partials_times_depth": MAX_PARTIALS_TIMES_DEPTH,
            "batch": BATCH, "tolerance": TOLERANCE}


def _recorded(inputs):
    """The outcomes and seconds of an earlier run with the same ``inputs``, to resume from."""
    try:
        entry = results.entry("fuzz")
    except KeyError:
        return [], 0.0
    if json.loads(json.dumps(inputs)) != entry["inputs"]:
        raise SystemExit("--resume: bench/results.json holds a fuzz run with other inputs; run without --resume")
    figures = entry["results"]
    outcomes = [Outcome(**{**outcome, "errors": tuple(outcome["errors"])}) for outcome in figures["outcomes"]]
    return outcomes, figures["seconds"]


def _report(index, case, outcome):
    worst = f"{max(outcome.errors):.2e}" if outcome.errors else "-"
    print(f"{index:>4} {case.describe():<62} {case.valid_prob:>4}/{case.ready_prob:<5} {outcome.status:<7} "
          f"{worst:>9} {outcome.cycles:>6} {outcome.seconds:>6.1f}", flush=True)
    if outcome.status != "pass":
        print(f"     {outcome.detail}", flush=True)


@contextlib.contextmanager
def case_runner(scheduler=None):
    """A function from a list of cases to their outcomes, in order, as they finish.

    Without ``scheduler`` the cases run here, one after the other; with it, each case is a task of
    that Dask cluster. A task that fails (its worker kept dying) is a failed case, run again by
    ``--resume``.
    """
    if scheduler is None:
        yield lambda cases: map(run_case, cases)
        return
    from dask.distributed import Client

    with Client(scheduler) as client:
        def run_on_cluster(cases):
            for future in client.map(run_case, cases, pure=False):
                try:
                    yield future.result()
                except Exception as error:
                    yield Outcome("fail", f"the task failed: {type(error).__name__}: {error}")

        yield run_on_cluster


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="cases to run (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the case generator (default 0)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run recorded in bench/results.json (same inputs) where it stopped, "
                             "running its failed cases again")
    parser.add_argument("--scheduler", help="run each case as a task of this Dask scheduler, e.g. tcp://host:8786")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", DeprecationWarning)

    rng = np.random.default_rng(args.seed)
    print(f"fuzzing {args.examples} cases, generator seed {args.seed}", flush=True)
    header = f"{'#':>4} {'case':<62} {'stalls v/r':>10} {'status':<7} {'worst err':>9} {'cycles':>6} {'s':>6}"
    print(header)
    print("-" * len(header), flush=True)
    inputs = _inputs(args)
    # Every case is recorded as it finishes, so an interrupted run keeps its outcomes and can resume.
    outcomes, earlier_seconds = _recorded(inputs) if args.resume else ([], 0.0)
    cases = [random_case(rng) for _ in range(max(args.examples, len(outcomes)))]
    # A failure recorded earlier is run again, so that a fix is checked without rerunning the passes.
    todo = [index for index, outcome in enumerate(outcomes) if outcome.status == "fail"]
    todo += range(len(outcomes), args.examples)
    start = time.perf_counter() - earlier_seconds
    with case_runner(args.scheduler) as run_cases:
        for index, outcome in zip(todo, run_cases([cases[index] for index in todo])):
            if index < len(outcomes):
                outcomes[index] = outcome
            else:
                outcomes.append(outcome)
            results.record("fuzz", summarize(cases[:len(outcomes)], outcomes, time.perf_counter() - start),
                           inputs=inputs)
            _report(index, cases[index], outcome)
    figures = results.entry("fuzz")["results"]
    print(f"\n{figures['passed']} passed, {figures['failed']} failed")
    print(f"{figures['refused_as_expected']} refused as documented; {figures['seconds']:.0f} s in all")
    for failure in figures["failures"]:
        print(f"FAIL {failure['case']}: {failure['detail']}")
    return 1 if figures["failed"] else 0


if __name__ == "__main__":
    # Dask pickles the functions of __main__ by value: run the imported module, whose tasks pickle by name.
    from bench import fuzz

    sys.exit(fuzz.main())

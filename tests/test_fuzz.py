"""Property: any small model's derivatives compile, simulate in Verilator and match float64 torch,
and the compiler refuses only what the README documents.

The cases and their check are ``bench/fuzz.py``'s (its long mode runs hundreds); here hypothesis
draws a few, derandomized so CI is reproducible. Each case costs a Verilator build, so the
number of examples stays at three (``INRARCH_FUZZ_EXAMPLES`` raises it locally). The other tests
check the fuzz's verdicts: a case passes on a CompileError only when it was built to meet that
documented refusal.
"""

import os

import numpy as np

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import inrarch
from bench import fuzz



@st.composite
def cases(draw):
    order = draw(st.integers(*fuzz.ORDERS))
    depth = draw(st.integers(*fuzz.DEPTHS))
    return fuzz.Case(
        activation=draw(st.sampled_from(fuzz.ACTIVATIONS)),
        w0=round(draw(st.floats(*fuzz.W0_RANGE)), 3),
        width=draw(st.integers(*fuzz.WIDTHS)),
        depth=depth,
        in_features=draw(st.integers(fuzz.IN_FEATURES[0], fuzz.max_in_features(order, depth))),
        out_features=draw(st.integers(*fuzz.OUT_FEATURES)),
        order=order,
        seed=draw(st.integers(0, 2**31 - 1)),
        valid_prob=draw(st.sampled_from([0.3, 0.6, 1.0])),
        ready_prob=draw(st.sampled_from([0.3, 0.6, 1.0])),
        # The quantities built to be refused are checked below without Verilator.
        quantity=draw(st.sampled_from(["derivatives", "gradient-norm"])),
    )


@settings(max_examples=int(os.environ.get("INRARCH_FUZZ_EXAMPLES", 3)), deadline=None, derandomize=True,
          database=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_random_model_derivatives_match_torch_in_verilator(case):
    note(f"case: {case!r}")
    outcome = fuzz.run_case(case)
    assert outcome.status in ("pass", "refused"), f"{case.describe()}: {outcome.detail}"


def tanh_case(**fields):
    """A tanh MLP 2→4→1 case of order 1 computing its derivatives, unless ``fields`` say otherwise."""
    return fuzz.Case(**{"activation": "tanh", "w0": 1.0, "width": 4, "depth": 1, "in_features": 2, "out_features": 1,
                        "order": 1, "seed": 0, "valid_prob": 1.0, "ready_prob": 1.0, **fields})


def compile_raising(message):
    def compile_(fn, example_input, **options):
        raise inrarch.CompileError(message)

    return compile_


def test_an_unexpected_compile_error_fails_the_case(monkeypatch):
    monkeypatch.setattr(inrarch, "compile", compile_raising("unsupported op aten.tanh at model.py:3; supported: add"))
    outcome = fuzz.run_case(tanh_case())
    assert outcome.status == "fail"
    assert outcome.detail == "unexpected CompileError: unsupported op aten.tanh at model.py:3; supported: add"


def test_another_documented_refusal_than_the_expected_one_fails_the_case(monkeypatch):
    monkeypatch.setattr(inrarch, "compile", compile_raising("division by a streamed tensor is not supported at x.py:1"))
    outcome = fuzz.run_case(tanh_case(quantity="log"))
    assert outcome.status == "fail" and outcome.detail.startswith("expected the 'log' refusal, got CompileError: ")


def test_a_case_built_to_be_refused_that_compiles_fails(monkeypatch):
    monkeypatch.setattr(inrarch, "compile", lambda fn, example_input, **options: object())
    outcome = fuzz.run_case(tanh_case(order=2, quantity="gradient-norm"))
    assert outcome.status == "fail"
    assert outcome.detail == "compiled, but the 'derivative of a norm' refusal was expected"


@pytest.mark.parametrize("quantity,order,refusal", [("log", 1, "log"), ("sqrt", 2, "derivative of sqrt"),
                                                    ("gradient-norm", 2, "derivative of a norm")])
def test_cases_built_to_be_refused_meet_their_documented_refusal(quantity, order, refusal):
    case = tanh_case(order=order, quantity=quantity)
    assert case.expected_refusal() == refusal
    outcome = fuzz.run_case(case)
    assert outcome.status == "refused", outcome.detail
    assert outcome.detail.startswith(f"refused ({refusal}): ")


def test_a_piecewise_linear_gradient_norm_may_compile_and_is_then_checked_against_torch():
    # leaky relu's gradient is piecewise constant: the derivative of its norm is identically zero,
    # and capture folds the refused op away with the zero tangent.
    case = fuzz.Case(activation="leaky_relu", w0=1.0, width=4, depth=1, in_features=2, out_features=2, order=2,
                     seed=3, valid_prob=0.5, ready_prob=0.5, quantity="gradient-norm")
    assert case.expected_refusal() == "derivative of a norm" and case.may_compile()
    assert not tanh_case(order=2, quantity="gradient-norm").may_compile()
    outcome = fuzz.run_case(case)
    assert outcome.status == "pass", outcome.detail
    assert outcome.errors and max(outcome.errors) <= fuzz.TOLERANCE


def test_only_the_quantities_built_to_be_refused_expect_a_refusal():
    assert tanh_case(order=3).expected_refusal() is None
    assert tanh_case(order=1, quantity="gradient-norm").expected_refusal() is None


def test_with_a_scheduler_each_case_is_a_dask_task_recorded_in_order_and_a_failed_task_fails_its_case(
        monkeypatch, capsys):
    distributed = pytest.importorskip("dask.distributed")
    rng = np.random.default_rng(5)
    drawn = [fuzz.random_case(rng) for _ in range(4)]
    recorded = []
    monkeypatch.setattr(fuzz.results, "record", lambda key, figures, inputs: recorded.append(figures))
    monkeypatch.setattr(fuzz.results, "entry", lambda key: {"results": recorded[-1]})

    def run_case(case):  # a stand-in for compile and Verilator, which this test is not about
        if case == drawn[1]:
            raise RuntimeError("worker lost")
        return fuzz.Outcome("pass", "", (0.0,), drawn.index(case))

    monkeypatch.setattr(fuzz, "run_case", run_case)
    # Workers in threads of this process run the stand-in; tasks still go through the scheduler.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        status = fuzz.main(["--examples", "4", "--seed", "5", "--scheduler", cluster.scheduler_address])
    assert status == 1
    assert [figures["completed"] for figures in recorded] == [1, 2, 3, 4]
    outcomes = recorded[-1]["outcomes"]
    assert [outcome["cycles"] for outcome in outcomes] == [0, 0, 2, 3]
    assert [outcome["status"] for outcome in outcomes] == ["pass", "fail", "pass", "pass"]
    assert outcomes[1]["detail"] == "the task failed: RuntimeError: worker lost"
    assert "3 passed, 1 failed" in capsys.readouterr().out

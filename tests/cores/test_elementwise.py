"""Element-wise cores in Amaranth's simulator: numbers, timing contract, and stalls."""

import itertools

import numpy as np
import pytest

from cores.elementwise import Add, AddConst, Mul, MulAdd, MulConst, Neg, Scale, Sub
from cores.fixed import Q
from cores.pipelining import UNPIPELINED, Pipelining
from cores.testing import check_contract, run_streams

SMALL_A, SMALL_B = Q(2, 2), Q(3, 1)
LARGE_A, LARGE_B, LARGE_C = Q(5, 22), Q(3, 24), Q(6, 21)
BIAS = np.array([0.75, -2.5, 1.125, 3.0625])
GAIN = np.array([1.5, -0.3, 2.2, -1.75])
SCALE = 1.7


def exact(name, a, b=None, c=None):
    """The real-valued result of each core, in float64 (exact for these formats)."""
    return {
        "add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b, "neg": lambda: -a,
        "muladd": lambda: a * b + c,
        "scale": lambda: a * SCALE,
        "addconst": lambda: a + np.resize(BIAS, a.shape),
        "mulconst": lambda: a * np.resize(GAIN, a.shape),
    }[name]()


def make(name, formats, out, lanes=1, pipelining=None, rounding="nearest"):
    """The core ``name``; ``pipelining`` if given, else its default."""
    a, b, c = formats
    options = {"rounding": rounding} | ({} if pipelining is None else {"pipelining": pipelining})
    return {
        "add": lambda: Add(a, b, out, lanes=lanes, **options),
        "sub": lambda: Sub(a, b, out, lanes=lanes, **options),
        "mul": lambda: Mul(a, b, out, lanes=lanes, **options), "neg": lambda: Neg(a, out, lanes=lanes, **options),
        "muladd": lambda: MulAdd(a, b, c, out, lanes=lanes, **options),
        "scale": lambda: Scale(a, out, SCALE, lanes=lanes, **options),
        "addconst": lambda: AddConst(a, out, BIAS, lanes=lanes, **options),
        "mulconst": lambda: MulConst(a, out, GAIN, lanes=lanes, **options),
    }[name]()


PORTS = {"add": "ab", "sub": "ab", "mul": "ab", "neg": "a", "muladd": "abc", "scale": "a",
         "addconst": "a", "mulconst": "a"}
MULTIPLYING = ("mul", "muladd", "scale", "mulconst")
# each core at its default, and with none of the optional pipeline registers: at the large formats
# below every core rounds half up, so the default has the rounding's own stage and UNPIPELINED not
VARIANTS = [(name, None) for name in sorted(PORTS)] + [(name, UNPIPELINED) for name in sorted(PORTS)]


def _variant_ident(value):
    return "unpipelined" if value is UNPIPELINED else "default" if value is None else value
# Error beyond the final rounding: the constant's own quantization (18 bits for gains, 32 for biases).
CONSTANT_ERROR = {"scale": lambda a: np.abs(a) * 2.0 ** -16, "mulconst": lambda a: np.abs(a) * 2.0 ** -16,
                  "addconst": lambda a: 2.0 ** -28}


def simulate(core, inputs, **kwargs):
    lanes = core.lanes
    streams = {port: [tuple(values[i:i + lanes]) for i in range(0, len(values), lanes)]
               for port, values in inputs.items()}
    beats = len(next(iter(streams.values())))
    return run_streams(core, streams, {"o": beats}, watch=("overflow",), **kwargs)


def check(name, core, inputs, formats, **kwargs):
    """Hardware == bit-exact model, and the model within its error bound of float64."""
    run = simulate(core, inputs, **kwargs)
    raw = [np.array(inputs[port], dtype=object) for port in PORTS[name]]
    model = core.reference(*raw)
    assert [v for beat in run.outputs["o"] for v in beat] == [int(v) for v in model]
    reals = [fmt.to_float(r) for fmt, r in zip(formats, raw)]
    true = exact(name, *reals)
    out = core.out_format
    got = out.to_float(model)
    fits = (true >= out.min_raw * out.ulp) & (true <= out.max_value)
    bound = out.ulp / 2 + CONSTANT_ERROR.get(name, lambda a: 0.0)(reals[0])
    assert np.all(np.abs(got - true)[fits] <= (bound if np.isscalar(bound) else bound[fits]) + 1e-12)
    assert run.signals["overflow"] == bool(np.any(~fits))
    return run


@pytest.mark.parametrize("name", sorted(PORTS))
def test_exhaustive_small_formats(name):
    formats = (SMALL_A, SMALL_B, SMALL_A)
    ranges = [range(fmt.min_raw, fmt.max_raw + 1) for fmt in formats[:len(PORTS[name])]]
    combos = np.array(list(itertools.product(*ranges)), dtype=object)
    inputs = {port: list(combos[:, k]) for k, port in enumerate(PORTS[name])}
    if name in ("addconst", "mulconst"):
        inputs = {port: values * 4 for port, values in inputs.items()}  # every value meets every constant
    for out in (Q(4, 3), Q(2, 1)):
        check(name, make(name, formats, out), inputs, formats)


@pytest.mark.parametrize("name", sorted(PORTS))
def test_random_large_formats(name):
    rng = np.random.default_rng(len(name))
    formats = (LARGE_A, LARGE_B, LARGE_C)
    inputs = {port: [int(v) for v in rng.integers(fmt.min_raw, fmt.max_raw + 1, 400)]
              for port, fmt in zip(PORTS[name], formats)}
    check(name, make(name, formats, Q(9, 18), lanes=2), inputs, formats)


@pytest.mark.parametrize("name, pipelining", VARIANTS, ids=_variant_ident)
@pytest.mark.parametrize("valid_prob", [1.0, 0.4])
def test_contract(name, pipelining, valid_prob):
    rng = np.random.default_rng(7)
    formats = (LARGE_A, LARGE_B, LARGE_C)
    inputs = {port: [int(v) for v in rng.integers(fmt.min_raw, fmt.max_raw + 1, 80)]
              for port, fmt in zip(PORTS[name], formats)}
    core = make(name, formats, Q(9, 18), lanes=2, pipelining=pipelining)
    run = check(name, core, inputs, formats, valid_prob=valid_prob, seed=3)
    check_contract(core.contract, run)


@pytest.mark.parametrize("name, pipelining", VARIANTS, ids=_variant_ident)
def test_every_item_once_under_stalls(name, pipelining):
    rng = np.random.default_rng(11)
    formats = (LARGE_A, LARGE_B, LARGE_C)
    inputs = {port: [int(v) for v in rng.integers(fmt.min_raw, fmt.max_raw + 1, 240)]
              for port, fmt in zip(PORTS[name], formats)}
    core = make(name, formats, Q(9, 18), lanes=2, pipelining=pipelining)
    check(name, core, inputs, formats, valid_prob=0.5, ready_prob=0.3, seed=5)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")  # built only for their latency
@pytest.mark.parametrize("pipelining, latencies", [
    (UNPIPELINED, {"mul": 2, "muladd": 2, "scale": 2, "mulconst": 2}),
    # the input registers, the saturation after the rounding, and MulAdd's addend: a stage each
    (Pipelining(), {"mul": 4, "muladd": 5, "scale": 4, "mulconst": 4}),
])
def test_latency_of_each_optional_register(pipelining, latencies):
    formats = (SMALL_A, SMALL_B, SMALL_A)
    assert {name: make(name, formats, Q(4, 3), pipelining=pipelining).latency for name in MULTIPLYING} == latencies


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")  # built only for their latency
@pytest.mark.parametrize("name", ["add", "sub", "neg", "addconst"])
def test_a_sum_has_the_rounding_stage_only_where_it_rounds_half_up(name):
    formats = (LARGE_A, LARGE_B, LARGE_C)  # the exact result has 24 or 32 fractional bits
    wide, narrow = Q(12, 32), Q(9, 18)
    assert make(name, formats, narrow).latency == 3
    assert make(name, formats, narrow, pipelining=UNPIPELINED).latency == 2
    # no bits dropped, or dropped without a carry: the saturation is alone in its stage already
    assert make(name, formats, wide).latency == 2
    assert make(name, formats, narrow, rounding="truncate").latency == 2


def test_overflow_is_sticky_and_saturates():
    core = Add(SMALL_A, SMALL_A, Q(2, 2))
    run = simulate(core, {"a": [7, 7, 0], "b": [7, -8, 0]})
    assert [v for (v,) in run.outputs["o"]] == [7, -1, 0] and run.signals["overflow"] == 1

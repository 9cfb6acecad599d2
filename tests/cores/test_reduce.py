import itertools

import numpy as np
import pytest

from cores.fixed import Q, convert_raw
from cores.reduce import Accumulate, Sum
from cores.testing import check_contract, run_streams


def exact_sums(core, tokens):
    """Exact raw sums of each firing, in ``core.acc_format`` (one row per output beat)."""
    tokens = np.asarray(tokens, dtype=object).reshape(-1, core.group, core.lanes)
    if isinstance(core, Sum):
        return tokens.sum(axis=(1, 2)).reshape(-1, 1)
    return tokens.sum(axis=1)


def expected_outputs(core, tokens):
    """The core's bit-exact model, and whether any sum overflowed."""
    raw = core.reference(np.asarray(tokens, dtype=object).reshape(-1)).reshape(-1, core.out_lanes)
    _, overflowed = convert_raw(exact_sums(core, tokens), core.acc_format, core.out_format)
    return [tuple(int(v) for v in row) for row in raw], bool(np.any(overflowed))


def random_tokens(rng, fmt, beats, lanes):
    return rng.integers(fmt.min_raw, fmt.max_raw + 1, size=(beats, lanes)).tolist()


def simulate(core, tokens, **kwargs):
    firings = len(tokens) // core.group
    return run_streams(core, {"a": tokens}, {"o": firings}, watch=("overflow",), **kwargs)


def check_numbers(core, tokens, run):
    """Bit-exact against the integer model, and within 1/2 ulp of the float64 sum where not saturated."""
    expected, overflowed = expected_outputs(core, tokens)
    assert run.outputs["o"] == expected
    assert run.signals["overflow"] == overflowed
    true = core.in_format.to_float(exact_sums(core, tokens))
    got = core.out_format.to_float(np.asarray(run.outputs["o"], dtype=object))
    in_range = (true >= core.out_format.min_raw * core.out_format.ulp) & (true <= core.out_format.max_value)
    error = np.abs(got - true)[in_range]
    assert error.size == 0 or error.max() <= core.out_format.ulp / 2
    return error.max() if error.size else 0.0


SMALL = Q(2, 2)


@pytest.mark.parametrize("out_format", [Q(3, 2), Q(4, 0), Q(2, 1)], ids=str)
def test_sum_exhaustive_pairs(out_format):
    values = range(SMALL.min_raw, SMALL.max_raw + 1)
    tokens = [[v] for pair in itertools.product(values, repeat=2) for v in pair]
    core = Sum(SMALL, out_format, 2)
    error = check_numbers(core, tokens, simulate(core, tokens))
    if out_format == Q(3, 2):
        assert error == 0


@pytest.mark.parametrize("out_format", [Q(3, 2), Q(2, 1)], ids=str)
def test_accumulate_exhaustive_pairs(out_format):
    values = range(SMALL.min_raw, SMALL.max_raw + 1)
    pairs = list(itertools.product(values, repeat=2))
    # Lane 1 meets the pairs in reverse so the two lanes never hold the same sums together.
    tokens = []
    for (a, b), (c, d) in zip(pairs, reversed(pairs)):
        tokens += [[a, c], [b, d]]
    core = Accumulate(SMALL, out_format, 2, lanes=2)
    check_numbers(core, tokens, simulate(core, tokens))


@pytest.mark.parametrize("kind, lanes", [(Sum, 3), (Sum, 4), (Accumulate, 3)])
def test_small_random(kind, lanes):
    rng = np.random.default_rng(lanes)
    core = kind(SMALL, Q(3, 1), 3, lanes=lanes)
    tokens = random_tokens(rng, SMALL, 3 * 60, lanes)
    check_numbers(core, tokens, simulate(core, tokens))


@pytest.mark.parametrize("kind", [Sum, Accumulate])
def test_large_random(kind):
    rng = np.random.default_rng(7)
    in_format = Q(8, 16)
    core = kind(in_format, Q(12, 10), 7, lanes=3)
    tokens = random_tokens(rng, in_format, 7 * 20, 3)
    # Scale the tail down so both saturating and in-range sums occur.
    tokens[len(tokens) // 2:] = [[v // 64 for v in token] for token in tokens[len(tokens) // 2:]]
    run = simulate(core, tokens)
    check_numbers(core, tokens, run)


def test_no_overflow_when_output_holds_the_sum():
    rng = np.random.default_rng(3)
    core = Sum(SMALL, Q(6, 2), 16, lanes=3)
    assert core.acc_format == Q(8, 2)
    tokens = [[SMALL.min_raw] * 3] * 16 + random_tokens(rng, SMALL, 16, 3)
    run = simulate(core, tokens)
    expected, overflowed = expected_outputs(core, tokens)
    assert run.outputs["o"] == expected and overflowed and run.signals["overflow"]
    core = Sum(SMALL, core.acc_format, 16, lanes=3)
    run = simulate(core, tokens)
    assert run.outputs["o"] == expected_outputs(core, tokens)[0] and not run.signals["overflow"]


GEOMETRIES = [(kind, group, lanes) for kind in (Sum, Accumulate) for group in (1, 2, 7, 16) for lanes in (1, 3, 4)]


def _geometry_id(geometry):
    kind, group, lanes = geometry
    return f"{kind.__name__}-g{group}-l{lanes}"


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_geometry_id)
@pytest.mark.parametrize("valid_prob", [1.0, 0.5])
def test_contract(geometry, valid_prob):
    kind, group, lanes = geometry
    core = kind(Q(4, 4), Q(5, 3), group, lanes=lanes)
    assert core.contract.reads == ((("a",), group),)
    assert core.contract.cooldown == 0 and core.contract.ii == group
    tree_depth = (lanes - 1).bit_length() if kind is Sum else 0
    assert core.contract.writes == (2 + tree_depth,)
    rng = np.random.default_rng(group * 10 + lanes)
    tokens = random_tokens(rng, Q(4, 4), group * 5, lanes)
    run = simulate(core, tokens, valid_prob=valid_prob, seed=group + lanes)
    check_contract(core.contract, run)
    assert run.outputs["o"] == expected_outputs(core, tokens)[0]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_geometry_id)
def test_every_item_moves_once_under_stalls(geometry):
    kind, group, lanes = geometry
    core = kind(Q(4, 4), Q(5, 3), group, lanes=lanes)
    rng = np.random.default_rng(group * 10 + lanes + 1)
    tokens = random_tokens(rng, Q(4, 4), group * 6, lanes)
    run = simulate(core, tokens, valid_prob=0.6, ready_prob=0.4, seed=group * lanes)
    expected, overflowed = expected_outputs(core, tokens)
    assert run.outputs["o"] == expected
    assert run.signals["overflow"] == overflowed

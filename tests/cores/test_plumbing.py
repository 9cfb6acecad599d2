import numbers

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from cores.fixed import Q, convert_raw
from cores.model import Storage
from cores.plumbing import Fork, Gather, LaneConverter, LaneSerializer, StreamFIFO
from cores.testing import check_contract, run_streams

# Several tests build a core only to read its contract.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

RNG = np.random.default_rng(1234)


def random_raw(fmt, count, rng=RNG):
    return [int(v) for v in rng.integers(fmt.min_raw, fmt.max_raw + 1, size=count)]


def random_tokens(fmt, count, lanes, rng=RNG):
    return [tuple(random_raw(fmt, lanes, rng)) for _ in range(count)]


# Fork -------------------------------------------------------------------------------------------

def test_fork_every_output_gets_every_token_once():
    fmt, lanes, outputs = Q(3, 5), 2, 3
    tokens = random_tokens(fmt, 200, lanes)
    for seed in range(3):
        core = Fork(fmt, outputs, lanes=lanes)
        run = run_streams(core, {"i": tokens}, {f"o{k}": len(tokens) for k in range(outputs)},
                          valid_prob=0.6, ready_prob=0.4, seed=seed)
        for k in range(outputs):
            assert run.outputs[f"o{k}"] == tokens


@pytest.mark.parametrize("valid_prob", [1.0, 0.5])
def test_fork_contract(valid_prob):
    fmt, outputs = Q(4, 4), 2
    tokens = random_tokens(fmt, 100, 1)
    core = Fork(fmt, outputs)
    run = run_streams(core, {"i": tokens}, {f"o{k}": len(tokens) for k in range(outputs)},
                      valid_prob=valid_prob, seed=7)
    for k in range(outputs):
        check_contract(core.contract, run, output=f"o{k}")
        assert run.outputs[f"o{k}"] == tokens


def test_fork_outputs_are_independent():
    core = Fork(Q(4, 4), 2)

    async def testbench(ctx):
        ctx.set(core.i.payload[0], 5)
        ctx.set(core.i.valid, 1)
        ctx.set(core.o1.ready, 1)
        # o1 takes the token now; o0 holds it, and the input waits for o0.
        assert (ctx.get(core.o0.valid), ctx.get(core.o1.valid), ctx.get(core.i.ready)) == (1, 1, 0)
        await ctx.tick()
        assert (ctx.get(core.o0.valid), ctx.get(core.o1.valid), ctx.get(core.i.ready)) == (1, 0, 0)
        # o0's valid does not depend on its ready.
        ctx.set(core.o0.ready, 1)
        assert (ctx.get(core.o0.valid), ctx.get(core.i.ready)) == (1, 1)
        await ctx.tick()
        ctx.set(core.i.payload[0], 6)
        assert (ctx.get(core.o0.valid), ctx.get(core.o1.valid)) == (1, 1)
        assert ctx.get(core.o0.payload[0]) == 6

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


# StreamFIFO -------------------------------------------------------------------------------------

def test_fifo_moves_every_token_once():
    fmt, lanes = Q(2, 6), 2
    tokens = random_tokens(fmt, 300, lanes)
    for depth, seed in [(3, 0), (5, 1), (16, 2)]:
        core = StreamFIFO(fmt, depth, lanes=lanes)
        run = run_streams(core, {"i": tokens}, {"o": len(tokens)}, valid_prob=0.7, ready_prob=0.4,
                          seed=seed, watch=("level",))
        assert run.outputs["o"] == tokens
        assert run.signals["level"] == 0


@pytest.mark.parametrize("depth", [3, 8])
@pytest.mark.parametrize("valid_prob", [1.0, 0.5])
def test_fifo_contract(depth, valid_prob):
    fmt = Q(4, 4)
    tokens = random_tokens(fmt, 150, 1)
    core = StreamFIFO(fmt, depth)
    run = run_streams(core, {"i": tokens}, {"o": len(tokens)}, valid_prob=valid_prob, seed=3)
    check_contract(core.contract, run)
    assert run.outputs["o"] == tokens


@pytest.mark.parametrize("depth", [3, 6])
def test_fifo_holds_depth_beats(depth):
    core = StreamFIFO(Q(8, 0), depth)

    async def testbench(ctx):
        ctx.set(core.i.valid, 1)
        accepted = 0
        for value in range(depth + 4):
            ctx.set(core.i.payload[0], value)
            accepted += ctx.get(core.i.ready)
            await ctx.tick()
        assert accepted == depth and ctx.get(core.level) == depth and not ctx.get(core.i.ready)
        ctx.set(core.i.valid, 0)
        ctx.set(core.o.ready, 1)
        for value in range(depth):
            assert ctx.get(core.o.valid) and ctx.get(core.o.payload[0]) == value
            await ctx.tick()
        assert not ctx.get(core.o.valid) and ctx.get(core.level) == 0

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("depth", [3, 5])
@pytest.mark.parametrize("valid_prob, ready_prob", [(0.9, 0.3), (0.5, 0.8)])
def test_fifo_cycle_model_is_the_hardware(depth, valid_prob, ready_prob):
    """Under random valid-gaps and back-pressure, FifoCycles takes, holds and offers beats in the
    cycles the SyncFIFOBuffered does."""
    core = StreamFIFO(Q(8, 0), depth)
    model = core.cycle_model()
    rng = np.random.default_rng(depth)

    async def testbench(ctx):
        for cycle in range(400):
            valid, out_ready = bool(rng.random() < valid_prob), bool(rng.random() < ready_prob)
            ctx.set(core.i.valid, valid)
            ctx.set(core.o.ready, out_ready)
            taken = model.ready({"i": valid}, out_ready)
            assert bool(ctx.get(core.i.ready) and valid) == bool(taken), f"cycle {cycle}: ready"
            assert bool(ctx.get(core.o.valid)) == model.out_valid, f"cycle {cycle}: output valid"
            assert ctx.get(core.level) == model.level, f"cycle {cycle}: level"
            model.clock(taken, out_ready)
            await ctx.tick()

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def test_fifo_rejects_shallow_depth():
    with pytest.raises(ValueError):
        StreamFIFO(Q(4, 4), 2)


# Gather -----------------------------------------------------------------------------------------

def gather_expected(inputs, out_format, index, firings, lanes, rounding="nearest", overflow="saturate"):
    """Raw output tokens and whether any element overflowed, for ``firings[f][port]`` raw input
    tokens (tuples of ``lanes`` values): per ``index`` entry, the chosen input token or the
    constant in every lane, converted to ``out_format``."""
    wide = Q(out_format.int_bits + 64, out_format.frac_bits)
    outputs, any_overflow = [], False
    for firing in firings:
        for entry in index:
            if isinstance(entry, numbers.Real):
                src, raw = wide, wide.quantize([entry] * lanes, rounding=rounding)
            else:
                src, raw = inputs[entry[0]][0], list(firing[entry[0]][entry[1]])
            result, overflowed = convert_raw(raw, src, out_format, rounding=rounding, overflow=overflow)
            outputs.append(tuple(int(value) for value in result))
            any_overflow |= bool(np.any(overflowed))
    return outputs, any_overflow


GATHER_CASES = {
    # name: (inputs as (format, tokens per firing), index)
    "transpose_2x3": ([(Q(4, 4), 6)], [(0, 0), (0, 3), (0, 1), (0, 4), (0, 2), (0, 5)]),
    "select": ([(Q(3, 6), 6)], [(0, 5), (0, 1)]),
    "broadcast_one": ([(Q(3, 6), 1)], [(0, 0)] * 5),
    "single": ([(Q(2, 3), 1)], [(0, 0)]),
    "concat_three": ([(Q(4, 4), 1), (Q(2, 6), 2), (Q(6, 2), 1)], [(0, 0), (1, 0), (1, 1), (2, 0)]),
    "expand_with_constants": ([(Q(4, 4), 2), (Q(3, 7), 3)],
                              [(1, 2), 0.25, (0, 0), (0, 0), (1, 0), -7.5, 100.0, (1, 1)]),
    "two_ports_select": ([(Q(4, 4), 4), (Q(5, 3), 4)], [(1, 3), (0, 0), (1, 0)]),
    "three_ports_expand": ([(Q(3, 5), 3), (Q(5, 5), 1), (Q(2, 8), 2)],
                           [(2, 1), (0, 0), (1, 0), 0.5, (0, 2), (0, 2), (2, 0), (1, 0), (0, 1), -1.0, (2, 1)]),
}
OUT_FORMAT = Q(4, 5)


def gather_data(inputs, firings, lanes, seed):
    """``data[f][port]``: the raw input tokens of each firing, tuples of ``lanes`` values."""
    rng = np.random.default_rng(seed)
    return [[random_tokens(fmt, count, lanes, rng) for fmt, count in inputs] for _ in range(firings)]


def gather_run(name, *, valid_prob, ready_prob, seed, firings=12, lanes=1):
    inputs, index = GATHER_CASES[name]
    data = gather_data(inputs, firings, lanes, seed)
    streams = {f"i{port}": [token for firing in data for token in firing[port]] for port in range(len(inputs))}
    core = Gather(inputs, OUT_FORMAT, index, lanes=lanes)
    expected, overflowed = gather_expected(inputs, OUT_FORMAT, index, data, lanes)
    run = run_streams(core, streams, {"o": len(expected)}, valid_prob=valid_prob, ready_prob=ready_prob,
                      seed=seed, watch=("overflow",))
    return core, run, expected, overflowed


@pytest.mark.parametrize("name", GATHER_CASES)
@pytest.mark.parametrize("lanes", [1, 3])
def test_gather_data_under_backpressure(name, lanes):
    core, run, expected, overflowed = gather_run(name, valid_prob=0.6, ready_prob=0.35, seed=11, lanes=lanes)
    assert run.outputs["o"] == expected
    assert run.signals["overflow"] == overflowed


@pytest.mark.parametrize("name", GATHER_CASES)
@pytest.mark.parametrize("valid_prob", [1.0, 0.4])
@pytest.mark.parametrize("lanes", [1, 2])
def test_gather_contract(name, valid_prob, lanes):
    core, run, expected, overflowed = gather_run(name, valid_prob=valid_prob, ready_prob=1.0, seed=5, lanes=lanes)
    check_contract(core.contract, run)
    assert run.outputs["o"] == expected
    assert run.signals["overflow"] == overflowed


@pytest.mark.parametrize("name", GATHER_CASES)
@pytest.mark.parametrize("lanes", [1, 3])
def test_gather_reference_is_bit_exact(name, lanes):
    inputs, index = GATHER_CASES[name]
    data = gather_data(inputs, 5, lanes, seed=3)
    expected, _ = gather_expected(inputs, OUT_FORMAT, index, data, lanes)
    # one row per firing, beat-major and lane-minor: a batch of 5 single firings
    per_port = [np.array([firing[port] for firing in data], dtype=object).reshape(5, -1) for port in range(len(inputs))]
    model = Gather.model(inputs, OUT_FORMAT, index, lanes=lanes).reference(*per_port)
    assert [tuple(int(v) for v in beat) for beat in model.reshape(-1, lanes)] == expected


def test_gather_overflow_of_one_lane_is_flagged():
    fmt = Q(8, 5)
    core = Gather([(fmt, 2)], OUT_FORMAT, [(0, 1), (0, 0)], lanes=3)
    fits, too_large = 3, int(fmt.quantize([100.0])[0])
    run = run_streams(core, {"i0": [(fits, fits, fits), (fits, fits, too_large)]}, {"o": 2}, watch=("overflow",))
    assert run.outputs["o"] == [(fits, fits, OUT_FORMAT.max_raw), (fits, fits, fits)]
    assert run.signals["overflow"] == 1
    core = Gather([(fmt, 2)], OUT_FORMAT, [(0, 0)], lanes=3)
    run = run_streams(core, {"i0": [(fits, fits, fits), (fits, fits, too_large)]}, {"o": 1}, watch=("overflow",))
    assert run.outputs["o"] == [(fits, fits, fits)] and run.signals["overflow"] == 0


def test_gather_buffer_entries_hold_every_lane():
    inputs, index = GATHER_CASES["expand_with_constants"]  # 5 inputs and 3 constants: halves of 8
    one, three = Gather.model(inputs, OUT_FORMAT, index), Gather.model(inputs, OUT_FORMAT, index, lanes=3)
    assert one.memories == (Storage(10, 16, True), Storage(3, 8, True)) and one.buffer_bits == 160
    assert three.memories == (Storage(28, 16, True), Storage(3, 8, True)) and three.buffer_bits == 448
    assert three.contract == one.contract


def test_gather_contract_numbers():
    inputs, index = GATHER_CASES["three_ports_expand"]
    contract = Gather(inputs, OUT_FORMAT, index).contract
    assert contract.reads == ((("i0",), 3), (("i1",), 1), (("i2",), 2))
    assert contract.writes == tuple(range(2, 13)) and contract.cooldown == 5 and contract.ii == 11
    inputs, index = GATHER_CASES["select"]
    contract = Gather(inputs, OUT_FORMAT, index).contract
    assert contract.writes == (2, 3) and contract.cooldown == 0 and contract.ii == 6


def test_gather_rounds_and_saturates():
    fmt = Q(4, 8)
    tokens = [int(v) for v in fmt.quantize([20 / 256, -8.0, 7.99])]
    # 20/256 is 2.5 ulp of q4.5 and rounds half up; -8.0 is q4.5's minimum exactly.
    core = Gather([(fmt, 3)], OUT_FORMAT, [(0, 0), (0, 1)])
    run = run_streams(core, {"i0": tokens}, {"o": 2}, watch=("overflow",))
    assert run.outputs["o"] == [(3,), (OUT_FORMAT.min_raw,)] and run.signals["overflow"] == 0
    # 7.99 rounds up past q4.5's maximum and saturates.
    core = Gather([(fmt, 3)], OUT_FORMAT, [(0, 2)])
    run = run_streams(core, {"i0": tokens}, {"o": 1}, watch=("overflow",))
    assert run.outputs["o"] == [(OUT_FORMAT.max_raw,)] and run.signals["overflow"] == 1


@pytest.mark.parametrize("in_format", [Q(3, 6), Q(6, 3)])
def test_gather_conversion_exhaustive(in_format):
    values = list(range(in_format.min_raw, in_format.max_raw + 1))
    core = Gather([(in_format, 8)], OUT_FORMAT, [(0, k) for k in range(8)])
    run = run_streams(core, {"i0": values}, {"o": len(values)}, watch=("overflow",))
    expected, overflowed = convert_raw(values, in_format, OUT_FORMAT)
    assert [v for (v,) in run.outputs["o"]] == list(expected)
    assert run.signals["overflow"] == bool(np.any(overflowed))
    # Within half an ulp of q4.5 wherever the value fits.
    error = np.abs(OUT_FORMAT.to_float(expected) - in_format.to_float(values))[~overflowed.astype(bool)]
    assert error.max() <= OUT_FORMAT.ulp / 2


def test_gather_rejects_bad_index():
    with pytest.raises(ValueError):
        Gather([(Q(4, 4), 2)], OUT_FORMAT, [(0, 2)])
    with pytest.raises(ValueError):
        Gather([(Q(4, 4), 2)], OUT_FORMAT, [(1, 0)])
    with pytest.raises(ValueError):
        Gather([], OUT_FORMAT, [0.0])


# LaneConverter ----------------------------------------------------------------------------------

LANE_CASES = [(1, 4), (4, 1), (2, 6), (6, 2), (3, 3), (1, 1), (2, 4), (4, 2)]


def lane_run(in_lanes, out_lanes, *, valid_prob, ready_prob, seed, elements=240):
    fmt = Q(3, 4)
    values = random_raw(fmt, elements, np.random.default_rng(seed))
    beats_in = [tuple(values[k:k + in_lanes]) for k in range(0, elements, in_lanes)]
    beats_out = [tuple(values[k:k + out_lanes]) for k in range(0, elements, out_lanes)]
    core = LaneConverter(fmt, in_lanes, out_lanes)
    run = run_streams(core, {"i": beats_in}, {"o": len(beats_out)}, valid_prob=valid_prob,
                      ready_prob=ready_prob, seed=seed)
    return core, run, beats_out


@pytest.mark.parametrize("in_lanes, out_lanes", LANE_CASES)
def test_lane_converter_data_under_backpressure(in_lanes, out_lanes):
    core, run, expected = lane_run(in_lanes, out_lanes, valid_prob=0.6, ready_prob=0.4, seed=2)
    assert run.outputs["o"] == expected


@pytest.mark.parametrize("in_lanes, out_lanes", LANE_CASES)
@pytest.mark.parametrize("valid_prob", [1.0, 0.4])
def test_lane_converter_contract(in_lanes, out_lanes, valid_prob):
    core, run, expected = lane_run(in_lanes, out_lanes, valid_prob=valid_prob, ready_prob=1.0, seed=4)
    check_contract(core.contract, run)
    assert run.outputs["o"] == expected


def test_lane_converter_contract_numbers():
    assert LaneConverter(Q(4, 4), 1, 4).contract.reads == ((("i",), 4),)
    assert LaneConverter(Q(4, 4), 1, 4).contract.writes == (1,)
    narrow = LaneConverter(Q(4, 4), 4, 1).contract
    assert narrow.reads == ((("i",), 1),) and narrow.writes == (1, 2, 3, 4) and narrow.cooldown == 3
    with pytest.raises(ValueError):
        LaneConverter(Q(4, 4), 2, 3)


# Every core elaborates to RTLIL ------------------------------------------------------------------

def gather_case(name, lanes=1):
    inputs, index = GATHER_CASES[name]
    return Gather(inputs, OUT_FORMAT, index, lanes=lanes)


@pytest.mark.parametrize("make", [
    lambda: Fork(Q(4, 4), 3, lanes=2),
    lambda: StreamFIFO(Q(4, 4), 64, lanes=2),
    lambda: gather_case("three_ports_expand"),
    lambda: gather_case("single"),
    lambda: gather_case("expand_with_constants", lanes=2),
    lambda: LaneConverter(Q(4, 4), 4, 2),
    lambda: LaneConverter(Q(4, 4), 2, 4),
    lambda: LaneSerializer(Q(4, 4), 5, 3),
    lambda: LaneSerializer(Q(4, 4), 1, 2),
])
def test_converts_to_rtlil(make):
    assert rtlil.convert(make())


# LaneSerializer ---------------------------------------------------------------------------------

SERIALIZER_CASES = [(1, 2), (3, 2), (4, 3), (5, 4)]  # (tokens, lanes)


def serializer_run(tokens, lanes, *, valid_prob, ready_prob, seed, firings=7):
    fmt = Q(3, 5)
    rng = np.random.default_rng(seed)
    beats = [random_tokens(fmt, tokens, lanes, rng) for _ in range(firings)]
    # Each firing: lane 0's tokens in beat order, then lane 1's, ...
    expected = [(firing[beat][lane],) for firing in beats for lane in range(lanes) for beat in range(tokens)]
    core = LaneSerializer(fmt, tokens, lanes)
    run = run_streams(core, {"i": [beat for firing in beats for beat in firing]}, {"o": len(expected)},
                      valid_prob=valid_prob, ready_prob=ready_prob, seed=seed)
    return core, run, beats, expected


@pytest.mark.parametrize("tokens, lanes", SERIALIZER_CASES)
def test_lane_serializer_data_under_backpressure(tokens, lanes):
    core, run, beats, expected = serializer_run(tokens, lanes, valid_prob=0.6, ready_prob=0.35, seed=8)
    assert run.outputs["o"] == expected


@pytest.mark.parametrize("tokens, lanes", SERIALIZER_CASES)
@pytest.mark.parametrize("valid_prob", [1.0, 0.4])
def test_lane_serializer_contract(tokens, lanes, valid_prob):
    core, run, beats, expected = serializer_run(tokens, lanes, valid_prob=valid_prob, ready_prob=1.0, seed=6)
    check_contract(core.contract, run)
    assert run.outputs["o"] == expected


@pytest.mark.parametrize("tokens, lanes", SERIALIZER_CASES)
def test_lane_serializer_reference_is_bit_exact(tokens, lanes):
    core, run, beats, expected = serializer_run(tokens, lanes, valid_prob=1.0, ready_prob=1.0, seed=9, firings=3)
    raw = np.array(beats).reshape(-1)  # beat-major, lane-minor
    assert [(int(v),) for v in core.reference(raw)] == expected
    # a leading batch axis is kept
    assert np.array_equal(core.reference(np.stack([raw, -raw])), np.stack([core.reference(raw), -core.reference(raw)]))


def test_lane_serializer_contract_and_resource_numbers():
    core, single_beat = LaneSerializer.model(Q(4, 4), 3, 4), LaneSerializer.model(Q(4, 4), 1, 2)
    contract = core.contract
    assert contract.reads == ((("i",), 3),) and contract.writes == tuple(range(2, 14))
    assert contract.cooldown == 9 and contract.ii == 12
    # two halves of 4 words (3 padded to a power of two) of 4 lanes of 8 bits
    assert core.memories == (Storage(32, 8, False),) and core.buffer_bits == 256 and core.multipliers == ()
    assert single_beat.memories == (Storage(16, 2, False),)


def test_lane_serializer_needs_two_lanes():
    with pytest.raises(ValueError, match="wire"):
        LaneSerializer.model(Q(4, 4), 3, 1)

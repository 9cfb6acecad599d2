"""``python -m bench.fmax``: each core's plan is for the ULX3S 85F's LFE5U-85F-6 (or the grade-8 part) at
150 MHz from the PLL, and what nextpnr printed or reported becomes the row's critical path or how far
routing got."""

import pytest

from bench import fmax
from bench.logic_depth import cores
from boards.plan import KEEP_REGISTERS
from devices import ECP5


@pytest.mark.parametrize("grade", ["6", "8"])
def test_a_core_plan_is_for_lfe5u_85f_at_150_mhz_from_the_pll_with_one_nextpnr_thread(tmp_path, grade):
    fmax.core_plan(cores(ECP5, fmax.TARGET_MHZ)["Add"][1], tmp_path, fmax.PLATFORMS[grade])
    script = (tmp_path / "build_board_top.sh").read_text()
    assert f"--85k --package CABGA381 --speed {grade}" in script
    assert ("--timing-allow-fail --report board_top.report.json --router router1 --threads 1 --detailed-timing-report"
            in script)
    assert 'FREQUENCY NET "design_clock" 150000000.0 HZ;' in (tmp_path / "board_top.lpf").read_text()
    # registers marked keep stay apart through synthesis, as in every open-flow board plan
    assert KEEP_REGISTERS in (tmp_path / "board_top.ys").read_text()
    netlist = (tmp_path / "board_top.il").read_text()
    assert "cell \\EHXPLLL \\pll" in netlist and "cell \\board_top.core \\core" in netlist
    # Every input bit of the core is a bit of the stimulus shift register.
    for port, bits in (("a__payload", "[15:0]"), ("a__valid", "[16]"), ("b__payload", "[32:17]"),
                       ("b__valid", "[33]"), ("o__ready", "[34]")):
        assert f"connect \\{port} \\stimulus {bits}\n" in netlist


def test_the_critical_path_names_its_primitives_module_and_delays():
    def step(kind, cell, delay, to_cell=None):
        return {"type": kind, "delay": delay, "from": {"cell": cell, "port": "A"},
                "to": {"cell": to_cell or cell, "port": "Z"}}

    report = {"critical_paths": [
        {"from": "posedge $glbnet$clk", "to": "<async>", "path": [step("clk-to-q", "alive", 0.4)]},
        {"from": "posedge $glbnet$clk", "to": "posedge $glbnet$clk", "path": [
            step("clk-to-q", "dataflow.n6_cos.table.0.0", 4.0),
            step("routing", "dataflow.n6_cos.table.0.0", 1.5, "dataflow.n6_cos.$86_MULT"),
            step("logic", "dataflow.n6_cos.$86_MULT", 3.0),
            step("routing", "dataflow.n6_cos.$86_MULT", 1.0, "dataflow.n6_cos.sum$CCU2_COMB0"),
            step("logic", "dataflow.n6_cos.sum$CCU2_COMB0", 0.3),
            step("logic", "dataflow.n6_cos.sum$CCU2_COMB1", 0.1),
            step("logic", "dataflow.n6_cos.carry$CCU2_COMB0", 0.1),
            step("logic", "$nextpnr_CCU2C_1$CCU2_COMB0", 0.1),
            step("routing", "$nextpnr_CCU2C_1$CCU2_COMB0", 0.5, "dataflow.n6_cos.result_reg"),
            step("setup", "dataflow.n6_cos.result_reg", 0.2)]}]}
    types = {"dataflow.n6_cos.table.0.0": "DP16KD", "dataflow.n6_cos.$86_MULT": "MULT18X18D",
             "dataflow.n6_cos.sum": "CCU2C", "dataflow.n6_cos.carry": "CCU2C",
             "dataflow.n6_cos.result_reg": "TRELLIS_FF"}
    assert fmax.critical_path(report, types) == {
        "from": "dataflow.n6_cos.table.0.0", "to": "dataflow.n6_cos.result_reg", "module": "dataflow.n6_cos",
        "primitives": "DP16KD → MULT18X18D → CCU2C ×3 → TRELLIS_FF", "logic_ns": 7.8, "routing_ns": 3.0}


@pytest.mark.parametrize("log,progress", [
    ("Info: Packing IOs..\n", "before placement"),
    ("Info: Placed 3 cells based on constraints.\nInfo: HeAP Placer Time: 20s\n", "in placement"),
    ("Info: Routing..\n"
     "Info:       1000 |      100       900 |  100   900 |     52000|       1.00       1.00|\n"
     "Info:       2000 |      350      1650 |  250   750 |     48123|       1.20       2.20|\n",
     "routing, 48,123 arcs still to route"),
    ("Info: Routing..\nInfo:     iter=1 wires=120000 overused=15000 overuse=30000 archfail=NA\n"
     "Info:     iter=2 wires=121000 overused=12345 overuse=20000 archfail=NA\n", "routing, 12,345 wires overused"),
])
def test_router_progress_says_how_far_nextpnr_got(log, progress):
    assert fmax.router_progress(log) == progress


def test_a_core_places_and_routes_register_to_register(tmp_path, full_mode):
    if not full_mode:
        pytest.skip("runs yosys and nextpnr (seconds; minutes on the first run of the WebAssembly tools): "
                    "run with --full")
    fmax.core_plan(cores(ECP5, fmax.TARGET_MHZ)["Add"][1], tmp_path)
    row = fmax.place_and_route(tmp_path, timeout=900)
    assert row["routed"] and row["fmax_mhz"] > 0 and row["passes"] == (row["fmax_mhz"] >= fmax.TARGET_MHZ)
    assert row["cells"]["TRELLIS_FF"] > 0 and row["cells"]["EHXPLLL"] == 1
    assert row["critical_path"]["primitives"].startswith("TRELLIS_FF")
    assert row["critical_path"]["primitives"].endswith("TRELLIS_FF")
    assert 0 < row["nextpnr_seconds"] <= row["seconds"]

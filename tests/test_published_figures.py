"""Published figures: the README's and docs' figures are generated from ``bench/results.json``, and
what is recorded there still holds.

* Every marked block of ``README.md`` and ``docs/*.md`` is exactly what :mod:`bench.publish`
  renders from the recorded entries, so a hand-edited or stale table fails, and the README's
  performance section holds no figure outside those blocks.
* INR-Arch's published figures are used exactly, from one place.
* The compile-only figures are predicted again by the current compiler. The quick rows (small
  SIREN) are compiled again in full. A full-size row takes 10 s to minutes to compile, nearly all
  of it in the number-format search, so CI takes the formats the row recorded and runs capture,
  passes, lowering and the latency solver on them (seconds): any change to those that moves the
  cycles fails. ``pytest --full`` compiles the full-size rows again from scratch, format search
  included, and repeats the format benchmark's search.
"""

import json
import re

import numpy as np
import pytest
import torch

import inrarch
from bench import constants, publish, results
from bench import fmax as fmax_bench
from bench import formats as formats_bench
from bench import workload as bench
from bench.constants import INR_ARCH, INR_ARCH_CLOCK_MHZ, INR_ARCH_ORDER_1_RESOURCES, U280_DSP_BUDGET
from bench.workload import MODES
from boards.device import ECP5_CAPACITY, ECP5_USABLE_FRACTION
from boards.plan import DEFAULT_ROUTER
from devices import ECP5
from inrarch import models

ENTRIES = results.load()
README = results.REPOSITORY / "README.md"


def rows(key):
    return [(key, index) for index in range(len(ENTRIES[key]["results"]["rows"]))] if key in ENTRIES else []


@pytest.mark.parametrize("path", publish.DOCUMENTS, ids=lambda path: path.name)
def test_marked_blocks_are_what_the_results_render_to(path):
    text = path.read_text()
    generated, _ = publish.rewrite(text, ENTRIES)
    assert generated == text, (f"{path.name} differs from bench/results.json (a stale or hand-edited figure): "
                               "run python -m bench.publish")


def test_every_renderer_has_one_block():
    names = [name for path in publish.DOCUMENTS for name in publish.rewrite(path.read_text(), ENTRIES)[1]]
    assert sorted(names) == sorted(publish.BLOCKS)


def test_a_changed_figure_is_caught():
    text = README.read_text()
    block = re.search(r"<!-- results:workload -->\n(.*?)<!-- /results:workload -->", text, re.DOTALL)
    assert block and "548,520" in block[1]
    edited = text.replace("548,520", "558,000")
    assert publish.rewrite(edited, ENTRIES)[0] == text


def test_the_performance_section_has_no_figure_outside_the_generated_blocks():
    text = README.read_text()
    start = text.index("## Performance on INR-Arch's workload")
    section = text[start:text.index("\n## ", start)]
    outside = re.sub(r"<!-- results:([\w-]+) -->.*?<!-- /results:\1 -->", "", section, flags=re.DOTALL)
    assert not re.findall(r"\d", outside)


def test_the_readme_says_how_the_derivatives_are_formed():
    text = README.read_text()
    assert "`inrarch.derivatives` uses nested forward mode" in text
    assert "symmetric de-duplication" in text
    assert "INR-Arch differentiates in reverse mode, one backward pass per output component" in text


def test_inr_arch_figures_are_its_published_ones():
    assert (constants.inr_arch_cycles(1), constants.inr_arch_cycles(2)) == (548_520, 763_440)
    assert INR_ARCH_CLOCK_MHZ == 300
    assert {order: figures["memory_mb"] for order, figures in INR_ARCH.items()} == {1: 0.8547, 2: 7.6707}
    assert INR_ARCH_ORDER_1_RESOURCES == {"DSP": 3199, "LUT": 502_000, "FF": 388_000, "BRAM18K": 347}
    text = README.read_text()
    assert "INR-Arch memory (MB)" in text and "FIFO memory" not in text


@pytest.mark.parametrize("key", ["workload", "workload_simulated", "workload_quick"])
def test_recorded_workload_used_the_current_inr_arch_figures(key):
    published = ENTRIES[key]["inputs"]["inr_arch"]
    assert published == json.loads(json.dumps({"clock_mhz": INR_ARCH_CLOCK_MHZ, "results": INR_ARCH,
                                               "order_1_resources": INR_ARCH_ORDER_1_RESOURCES}))


def test_the_workload_covers_both_orders_budgets_and_modes_and_the_torch_baseline():
    entry = ENTRIES["workload"]
    cases = {(row["order"], row["dsp_budget"], row["mode"]) for row in entry["results"]["rows"]}
    assert cases == {(order, budget, mode) for order in (1, 2) for budget in (U280_DSP_BUDGET, 3199) for mode in MODES}
    assert {(row["order"], row["mode"]) for row in entry["results"]["torch_cpu"]} == {
        (order, mode) for order in (1, 2) for mode in MODES}
    assert entry["inputs"]["torch_threads"] >= 1 and entry["inputs"]["torch_repeats"] >= 1


@pytest.mark.parametrize("key", ["workload_simulated", "workload_quick"])
def test_the_simulations_record_cycles_error_and_overflow(key):
    entry = ENTRIES[key]
    assert entry["results"]["rows"]
    for row in entry["results"]["rows"]:
        assert row["cycles_simulated"] == row["cycles_predicted"]
        assert row["max_error"] <= 1e-3
        assert row["overflow"] is False
    if key == "workload_simulated":
        assert entry["inputs"]["model"] == constants.WORKLOAD


def _function(entry, row):
    model = models.siren(**entry["inputs"]["model"])
    return model, bench.workload_function(model, row["order"], row["mode"])


@pytest.mark.parametrize("key,index", rows("workload_quick"))
def test_quick_rows_are_predicted_again(key, index):
    entry = ENTRIES[key]
    row = entry["results"]["rows"][index]
    model, _ = _function(entry, row)
    _, again = bench.compile_row(model, row["order"], row["mode"], row["batch"], row["dsp_budget"])
    for name in ("cycles_predicted", "dsp_estimate", "multipliers", "buffer_bits", "buffer_bits_by_kind",
                 "weight_bits", "formats"):
        assert again[name] == row[name], name


@pytest.mark.parametrize("key,index", rows("workload") + rows("workload_simulated"))
def test_full_size_cycles_are_solved_again_at_the_recorded_formats(key, index):
    entry = ENTRIES[key]
    row = entry["results"]["rows"][index]
    _, fn = _function(entry, row)
    cycles = bench.cycles_at_formats(fn, row["batch"], row["formats"], row["weight_width"], row["dsp_budget"])
    assert cycles == row["cycles_predicted"]


@pytest.mark.parametrize("key,index", rows("budget"))
def test_budget_sweep_cycles_are_solved_again_at_the_recorded_formats(key, index):
    entry = ENTRIES[key]
    row = entry["results"]["rows"][index]
    fn = bench.workload_function(models.siren(**entry["inputs"]["model"]), row["order"], entry["inputs"]["mode"])
    cycles = bench.cycles_at_formats(fn, row["batch"], row["formats"], row["weight_width"], row["dsp_budget"])
    assert cycles == row["cycles_predicted"]


@pytest.mark.parametrize("key,index", rows("workload") + rows("workload_simulated"))
def test_full_size_rows_are_compiled_again(key, index, full_mode):
    if not full_mode:
        pytest.skip("compiles a full-size design (10 s to minutes): run with --full")
    entry = ENTRIES[key]
    row = entry["results"]["rows"][index]
    model, _ = _function(entry, row)
    _, again = bench.compile_row(model, row["order"], row["mode"], row["batch"], row["dsp_budget"])
    for name in ("cycles_predicted", "dsp_estimate", "multipliers", "buffer_bits", "weight_bits", "formats"):
        assert again[name] == row[name], name


def test_compile_time_rows_are_compiled_again(full_mode):
    if not full_mode:
        pytest.skip("compiles full-size designs up to order 3 (minutes): run with --full")
    entry = ENTRIES["compile_time"]
    model = models.siren(**entry["inputs"]["model"])
    for row in entry["results"]["rows"]:
        design = inrarch.compile(inrarch.derivatives(model, row["order"]),
                                 torch.zeros(entry["inputs"]["batch"], 2, dtype=torch.float64))
        assert (len(design.graph.nodes), design.report["dsp_estimate"]) == (row["nodes"], row["dsp_estimate"])


def test_format_search_figures_are_measured_again(full_mode):
    if not full_mode:
        pytest.skip("searches the formats of full-size designs (minutes): run with --full")
    entry = ENTRIES["formats"]
    inputs = entry["inputs"]
    x = np.random.default_rng(inputs["test_seed"]).uniform(-1.0, 1.0, size=(inputs["test_samples"], 2))
    for order, recorded in entry["results"].items():
        again = formats_bench.measure(int(order), x)
        assert again["sweep"] == recorded["sweep"]
        for name in ("uniform_width", "widths", "mean_bits", "error", "trials"):
            assert again["searched"][name] == recorded["searched"][name], name


def test_the_ecp5_constants_stand_on_the_recorded_place_and_route():
    """The values the code keeps for the ECP5 (each with a pointer to this evidence) agree with what
    ``python -m bench.fmax`` measured on the ULX3S's part."""
    entry = ENTRIES["fmax"]
    inputs, rows = entry["inputs"], {row["name"]: row for row in entry["results"]["rows"]}
    assert inputs["part"].startswith("LFE5U-85F-6") and inputs["target_mhz"] == 150.0
    # the README's clock section: every core meets the target on the ULX3S's part
    cores = [row for row in rows.values() if row["kind"] == "core"]
    assert cores and all(row["routed"] and row["passes"] for row in cores)
    # the optional pipeline registers are left out only below every core's Fmax without them
    assert inputs["unpipelined_max_mhz"] == ECP5.unpipelined_max_mhz
    unpipelined = [row["unpipelined"] for row in rows.values() if row["kind"] == "core"]
    assert all(figures["routed"] for figures in unpipelined)
    assert ECP5.unpipelined_max_mhz < min(figures["fmax_mhz"] for figures in unpipelined)
    # the designs' router routes the design that router1 does not finish in its time, or does so sooner
    assert inputs["routers"] == {"cores": fmax_bench.CORE_ROUTER, "designs": DEFAULT_ROUTER["Trellis"]}
    compared = rows[inputs["router1_design"]]
    assert compared["routed"]
    assert not compared["router1"]["routed"] or compared["router1"]["nextpnr_seconds"] > compared["nextpnr_seconds"]
    # the fill design, folded into the usable share of the part's multipliers, routes within the timeout
    fill = rows[inputs["fill_design"]]
    assert inputs["usable_fraction"] == ECP5_USABLE_FRACTION
    assert fill["dsp_budget"] == int(ECP5_CAPACITY["85F"]["DSP"] * ECP5_USABLE_FRACTION)
    assert fill["routed"] and fill["seconds"] <= inputs["timeout_seconds"]

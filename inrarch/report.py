"""A design's report: the figures ``report.json`` and :attr:`inrarch.Design.report` hold."""

from .solver_report import add_solver_report, fifo_entries

__all__ = ["count_multipliers", "design_report"]


def _cores(netlist):
    """Every core of ``netlist`` once (two matmul channels may share one), as its model."""
    return list({id(instance.core): instance.core for instance in netlist.instances}.values())


def count_multipliers(netlist):
    """Multipliers in the datapath: every multiplier every core builds (its ``multipliers``), each
    copy of it in every sample lane counted."""
    return sum(len(core.multipliers) for core in _cores(netlist))


def design_report(design):
    """The report of a :class:`~inrarch.design.Design`: cycles, latency, the optional pipeline
    registers of its cores (:class:`cores.pipelining.Pipelining`), buffer memory, multipliers,
    formats, the format search and the solver's figures (:func:`inrarch.solver_report.add_solver_report`)."""
    clock = design.options["clock_mhz"]
    fifos = fifo_entries(design.netlist, design.schedule.depths, design.options["device"])
    weights = {id(node.attrs["weight"]) for node in design.graph.nodes if "weight" in node.attrs}
    return add_solver_report({
        "batch": design.schedule.batch,
        "cycles_predicted": design.schedule.cycles,
        "clock_mhz": clock,
        "pipelining": design.options["pipelining"].as_dict(),
        "latency_us": design.schedule.cycles / clock,
        "first_sample_cycles": design.schedule.first_sample_cycles,
        "lanes": design.netlist.lanes,
        "period_cycles": design.netlist.period,
        "critical_core": design.schedule.critical.name,
        "fifo_bits": sum(f["bits"] for f in fifos),
        "fifo_count": len(fifos),
        "multipliers": count_multipliers(design.netlist),
        "dsp_estimate": design.netlist.dsps,
        "dsp_budget": design.options["dsp_budget"],
        "macs_per_sample": design.graph.macs(),
        "weight_matrices": len(weights),
        "weight_bits": sum(getattr(core, "weight_bits", 0) for core in _cores(design.netlist)),
        "ops": design.graph.op_counts(),
        "input_format": str(design.input_format),
        "output_formats": [str(f) for f in design.output_formats],
        "formats": {node.name: str(design.formats[node]) for node in design.graph.nodes},
        "format_search": design.options["format_search"],
        "compile_seconds": round(sum(v for k, v in design.timings.items() if k != "verilog_seconds"), 3),
    }, design.netlist, design.schedule, design.options["device"])

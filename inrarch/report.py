"""A design's report: the figures ``report.json`` and :attr:`inrarch.Design.report` hold."""

from cores.weights import WORD_BITS

from .schedule import solve_load
from .solver_report import add_solver_report, fifo_entries

__all__ = ["count_multipliers", "design_report", "weights_report"]


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
    formats, the format search, how it takes its weights (:func:`weights_report`) and the solver's
    figures (:func:`inrarch.solver_report.add_solver_report`)."""
    options = design.options
    clock = options.clock_mhz
    fifos = fifo_entries(design.netlist, design.schedule.depths, options.device)
    weights = {id(node.attrs["weight"]) for node in design.graph.nodes if "weight" in node.attrs}
    return add_solver_report({
        "batch": design.schedule.batch,
        "cycles_predicted": design.schedule.cycles,
        "clock_mhz": clock,
        "pipelining": options.pipelining.as_dict(),
        "latency_us": design.schedule.cycles / clock,
        "first_sample_cycles": design.schedule.first_sample_cycles,
        "lanes": design.netlist.lanes,
        "period_cycles": design.netlist.period,
        "critical_core": design.schedule.critical.name,
        "fifo_bits": sum(f["bits"] for f in fifos),
        "fifo_count": len(fifos),
        "multipliers": count_multipliers(design.netlist),
        "dsp_estimate": design.netlist.dsps,
        "dsp_budget": options.budget,
        "macs_per_sample": design.graph.macs(),
        "weight_matrices": len(weights),
        "weight_bits": sum(getattr(core, "weight_bits", 0) for core in _cores(design.netlist)),
        "ops": design.graph.op_counts(),
        "input_format": str(design.input_format),
        "output_formats": [str(f) for f in design.output_formats],
        "input": {"port": "x", "shape": list(design.graph.input.shape[1:]), "format": str(design.input_format),
                  "domain": options.as_dict()["domain"]},
        "outputs": [{"port": stream.port, "shape": list(shape), "format": str(fmt), "meaning": meaning}
                    for stream, shape, fmt, meaning in zip(design.netlist.outputs, design.output_shapes,
                                                           design.output_formats, design.output_meanings)],
        "formats": {node.name: str(design.formats[node]) for node in design.graph.nodes},
        "format_search": design.format_search.as_dict() if design.format_search else None,
        "compile_seconds": round(sum(v for k, v in design.timings.items() if k != "verilog_seconds"), 3),
        **({"floorplan": floorplan_report(design.netlist)} if design.netlist.floorplan else {}),
        **weights_report(design),
    }, design.netlist, design.schedule, options.device)


def floorplan_report(netlist):
    """``report["floorplan"]`` (:meth:`inrarch.floorplan.Floorplan.as_dict`) with the relay
    stations: one per die each crossing stream passes; with runtime weights also the load relays,
    one per die the words for a core in another die pass (:meth:`inrarch.lower.Netlist.load_path`)."""
    loads = [netlist.load_path(instance) for instance in netlist.loaded()]
    return {**netlist.floorplan.as_dict(), "relay_stations": sum(len(stream.path) for stream in netlist.streams),
            "crossing_streams": sum(bool(stream.path) for stream in netlist.streams),
            **({"load_relays": sum(map(len, loads)), "crossing_loads": sum(map(bool, loads))} if loads else {})}


def weights_report(design):
    """How a design takes its weights: ``"weights"`` (``"constant"`` or ``"runtime"``) and, for runtime
    weights, the family it accepts (each tensor's name, shape, bound and largest magnitude in the
    examples), its weight image (words, bytes, and each core's segment: words, element format and
    the stored tensor's bound) and the cycles a load takes (:func:`inrarch.schedule.solve_load`)."""
    if not design.runtime_weights:
        return {"weights": "constant"}
    bounds = {instance.name: instance.node.meta["bound"] for instance in design.netlist.loaded()}
    parts = [{"core": segment.core, "words": segment.layout.words, "format": str(segment.layout.format),
              "bound": bounds[segment.core]} for segment in design.segments]
    words = design.weight_words
    return {"weights": "runtime", "weight_family": design.family.as_dict(),
            "weight_image_words": words, "weight_image_bytes": words * WORD_BITS // 8,
            "weight_segments": parts, "weight_load_cycles": solve_load(design.netlist)}

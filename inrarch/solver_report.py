"""What the latency solver found: FIFO sizes and memory types, the critical path, and plots.

:func:`add_solver_report` puts into a design's report the memory primitive of every FIFO, the
FIFO bits by primitive, the bits of every on-chip buffer (FIFOs, matmul input buffers, gather
buffers) and the critical path: the core that bounds throughput and, for each output, the chain
of cores whose latencies add up to the first sample's latency.
:func:`write_plots` draws the solved schedule: a timeline of every core's activity and the
occupancy of the largest FIFOs over time.
"""

from pathlib import Path

import numpy as np

from cores.plumbing import StreamFIFO

__all__ = ["fifo_entries", "buffer_bits_by_kind", "critical_path", "add_solver_report", "fifo_occupancy",
           "write_plots"]


def _sink_name(stream):
    return stream.sink.name if stream.sink is not None else stream.port


def fifo_entries(netlist, depths, device):
    """One dict per stream: endpoints, number format, depth (``depths[stream]``), width, bits and
    its memory primitive.

    The primitive is where ``device`` (:meth:`devices.Device.memory_kind`) maps the FIFO's memory
    (:attr:`cores.plumbing.StreamFIFO.memories`): the memory the resource estimate counts.
    """
    entries = []
    for stream in netlist.streams:
        fmt, depth = stream.format, depths[stream]
        width = stream.width
        memory, = stream.fifo(depth).model.memories
        entries.append({"from": stream.source.name, "to": _sink_name(stream), "port": stream.port,
                        "format": str(fmt), "depth": depth, "width": width, "bits": depth * width,
                        "memory": device.memory_kind(memory.width, memory.depth)})
    return entries


def buffer_bits_by_kind(netlist, fifos):
    """Bits of every writable on-chip buffer: ``"FIFO"``, the ``fifos`` entries, then per core class
    with a ``buffer_bits`` (``MatVec`` input buffers, ``Gather`` buffers) the sum over its cores.

    Weights and function tables are constants, not buffers, and are not counted. Two matmul
    channels that share one core count it once.
    """
    by_kind = {"FIFO": sum(entry["bits"] for entry in fifos)}
    for blueprint in {id(i.blueprint): i.blueprint for i in netlist.instances}.values():
        if hasattr(blueprint.model, "buffer_bits"):
            kind = blueprint.core.__name__
            by_kind[kind] = by_kind.get(kind, 0) + blueprint.model.buffer_bits
    return by_kind


def _producers(netlist):
    return {(id(s.sink), s.port): s.source for s in netlist.streams if s.sink is not None}


def critical_path(netlist, schedule):
    """The throughput bound and, per output, the path that sets the first sample's latency.

    The throughput bound is the instance with the most busy cycles per group of samples
    (:meth:`inrarch.lower.Netlist.critical`). The latency path of an output walks back from it
    through, at every core, the input whose last token for the core's first firing arrived last
    (the input that made the first firing wait); each hop's latency is the cycles from the
    producer's first token to the core's first token, FIFO included, so the hops add up to the
    cycles from the first accepted input to the output's first token.
    """
    producers = _producers(netlist)
    emits = schedule.emits
    bound = netlist.critical()
    paths = []
    for stream in netlist.outputs:
        hops = [{"core": stream.port, "latency": StreamFIFO.latency}]
        instance = stream.source
        while instance is not netlist.source:
            needs = instance.contract.consumes  # tokens per port of the first firing
            port = max(instance.inputs, key=lambda p: emits[producers[id(instance), p]][needs[p] - 1])
            producer = producers[id(instance), port]
            hops.append({"core": instance.name, "latency": int(emits[instance][0] - emits[producer][0])})
            instance = producer
        hops.append({"core": netlist.source.name, "latency": int(emits[instance][0] - schedule.first_accept)})
        hops.reverse()
        paths.append({"output": stream.port, "latency": sum(h["latency"] for h in hops), "path": hops})
    return {
        "throughput_bound": bound.name,
        "busy_cycles_per_group": bound.busy_cycles,
        "period_cycles": netlist.period,
        "outputs": paths,
        "longest": max(paths, key=lambda p: p["latency"])["output"] if paths else None,
    }


def add_solver_report(report, netlist, schedule, device):
    """Add the memory type of every FIFO on ``device``, FIFO bits by memory type, buffer bits (all
    of them and by kind, :func:`buffer_bits_by_kind`) and the critical path to ``report``."""
    report["fifos"] = fifo_entries(netlist, schedule.depths, device)
    by_memory = {}
    for entry in report["fifos"]:
        by_memory[entry["memory"]] = by_memory.get(entry["memory"], 0) + entry["bits"]
    report["fifo_bits_by_memory"] = by_memory
    report["buffer_bits_by_kind"] = buffer_bits_by_kind(netlist, report["fifos"])
    report["buffer_bits"] = sum(report["buffer_bits_by_kind"].values())
    report["critical_path"] = critical_path(netlist, schedule)
    return report


def fifo_occupancy(stream, schedule):
    """``(cycles, tokens)``: tokens written to ``stream``'s FIFO and not yet read, after each change."""
    writes = np.asarray(schedule.emits[stream.source])
    reads = np.asarray(schedule.reads(stream))
    times = np.concatenate([writes, reads])
    steps = np.concatenate([np.ones(len(writes), dtype=np.int64), -np.ones(len(reads), dtype=np.int64)])
    order = np.lexsort((steps, times))  # a read and a write in one cycle: read first
    times, levels = times[order], np.cumsum(steps[order])
    last = np.r_[times[1:] != times[:-1], True]
    return times[last], levels[last]


def _busy_intervals(instance, schedule):
    """Runs of consecutive cycles in which ``instance`` accepts or emits a token."""
    cycles = [schedule.emits[instance]] + list(schedule.accepts[instance].values())
    active = np.unique(np.concatenate(cycles))
    if len(active) == 0:
        return []
    breaks = np.flatnonzero(np.diff(active) > 1)
    starts = np.r_[active[0], active[breaks + 1]]
    ends = np.r_[active[breaks], active[-1]]
    return [(int(s), int(e - s + 1)) for s, e in zip(starts, ends)]


def write_plots(design, directory, *, fifos=6):
    """Draw the solved schedule of ``design`` into ``directory``; return the files written.

    ``timeline.png``: per core, the cycles in which it accepts or emits tokens.
    ``fifo_occupancy.png``: tokens held over time by the ``fifos`` deepest FIFOs, with their depths.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    netlist, schedule = design.netlist, design.schedule
    critical = design.report.get("critical_path", {}).get("throughput_bound")

    instances = netlist.instances
    figure, axes = plt.subplots(figsize=(12, max(3.0, 0.22 * len(instances) + 1.5)))
    for row, instance in enumerate(instances):
        color = "tab:red" if instance.name == critical else "tab:blue"
        axes.broken_barh(_busy_intervals(instance, schedule), (row - 0.4, 0.8), color=color)
    axes.set_yticks(range(len(instances)))
    axes.set_yticklabels([i.name for i in instances], fontsize=6 if len(instances) > 40 else 8)
    axes.invert_yaxis()
    axes.set_xlabel("cycle")
    axes.set_title(f"Core activity, batch {schedule.batch}: {schedule.cycles} cycles, period {schedule.period}"
                   + (f" (red: throughput bound {critical})" if critical else ""))
    figure.tight_layout()
    timeline = directory / "timeline.png"
    figure.savefig(timeline, dpi=100)
    plt.close(figure)

    depths = schedule.depths
    deepest = sorted(netlist.streams, key=lambda s: -depths[s])[:fifos]
    figure, axes = plt.subplots(figsize=(12, 4))
    for stream in deepest:
        times, levels = fifo_occupancy(stream, schedule)
        line, = axes.step(times, levels, where="post",
                          label=f"{stream.source.name} → {_sink_name(stream)}.{stream.port} (depth {depths[stream]})")
        axes.axhline(depths[stream], color=line.get_color(), linestyle=":", linewidth=0.8)
    axes.set_xlabel("cycle")
    axes.set_ylabel("tokens held")
    axes.set_title(f"Occupancy of the {len(deepest)} deepest FIFOs (dotted: solved depth)")
    axes.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    occupancy = directory / "fifo_occupancy.png"
    figure.savefig(occupancy, dpi=100)
    plt.close(figure)
    return [timeline, occupancy]

"""A cycle-level model of a whole design under back-pressure: what the solver's schedule becomes
with FIFOs shallower than it asks for.

Every core, FIFO and the pacer runs its own :class:`~cores.contract.CycleModel` (``cycle_model``,
each checked against its hardware in tests/cores), and the eager forks are modelled here;
tests/test_solver.py checks the prediction for whole designs against Amaranth's simulator cycle by
cycle.
"""

from dataclasses import dataclass, field

__all__ = ["BackpressureRun", "simulate"]


@dataclass
class BackpressureRun:
    """What :func:`simulate` predicts for one batch with given FIFO depths.

    Cycle numbers count from the cycle the first input token is accepted (cycle 0).
    """

    batch: int
    cycles: int                  # first input accepted → last output taken, inclusive; None on deadlock
    deadlock: bool
    writes: dict = field(default_factory=dict)    # stream -> cycles its tokens entered its FIFO
    blocked: dict = field(default_factory=dict)   # stream -> cycles a token waited for room in the FIFO
    peak_level: dict = field(default_factory=dict)  # stream -> largest FIFO level (StreamFIFO.level)


def simulate(netlist, batch, depths, *, max_cycles=None):
    """Predict the cycle-level timing of ``batch`` samples with the given FIFO depths.

    Parameters
    ----------
    netlist : inrarch.lower.Netlist
    batch : int
        Samples offered back to back by an always-valid source; outputs are always ready.
    depths : dict of Stream to int
        FIFO depth per stream, e.g. the solver's (:attr:`SolvedSchedule.depths`).
    max_cycles : int, optional
        Give up (a deadlock) when no token has moved for this many cycles; default
        ``4 * period + 64``.

    Returns
    -------
    BackpressureRun
    """
    idle_limit = max_cycles or 4 * netlist.period + 64
    groups = netlist.samples(batch) // netlist.lanes
    models = {instance: instance.cycle_model(groups * instance.firings_per_group) for instance in netlist.instances}
    fifos = {stream: stream.fifo(depths[stream]).model.cycle_model() for stream in netlist.streams}
    by_source = netlist.readers_by_source()
    readers = {instance: by_source.get(id(instance), []) for instance in netlist.instances}
    inputs = {instance: {} for instance in netlist.instances}
    for stream in netlist.streams:
        if stream.sink is not None:
            inputs[stream.sink][stream.port] = stream
    taken_by = {stream: False for stream in netlist.streams}
    expected = {stream: netlist.samples(batch) * stream.source.node.numel for stream in netlist.outputs}
    delivered = dict.fromkeys(netlist.outputs, 0)
    result = BackpressureRun(batch=batch, cycles=None, deadlock=False,
                             writes={stream: [] for stream in netlist.streams},
                             blocked=dict.fromkeys(netlist.streams, 0), peak_level=dict.fromkeys(netlist.streams, 0))
    first = last = None
    cycle = idle = 0
    while any(delivered[s] < expected[s] for s in netlist.outputs):
        if idle > idle_limit:
            result.deadlock = True
            return result
        moved = False
        out_ready, writes = {}, {}
        for instance, model in models.items():
            valid = model.out_valid
            ready = True
            for stream in readers[instance]:
                offer = valid and not taken_by[stream]
                writes[stream] = offer and fifos[stream].w_rdy
                if offer and not fifos[stream].w_rdy:
                    result.blocked[stream] += 1
                ready = ready and (taken_by[stream] or fifos[stream].w_rdy)
            out_ready[instance] = ready
        r_en = dict.fromkeys(netlist.outputs, True)
        taken_inputs = {}
        for instance, model in models.items():
            ports = inputs[instance]
            if instance is netlist.source:
                taken = bool(model.ready(None, out_ready[instance]))
            else:
                valid = {port: fifos[stream].out_valid for port, stream in ports.items()}
                accepted = model.ready(valid, out_ready[instance])
                for port, stream in ports.items():
                    r_en[stream] = port in accepted
                taken = bool(accepted)
            taken_inputs[instance] = taken
            if taken and instance is netlist.source and first is None:
                first = cycle
        for stream, fifo in fifos.items():
            if writes[stream]:
                result.writes[stream].append(cycle - (first or 0))
                moved = True
            if fifo.out_valid and r_en[stream]:
                moved = True
                if stream.sink is None:
                    delivered[stream] += 1
                    last = cycle
            result.peak_level[stream] = max(result.peak_level[stream], fifo.level)
            fifo.clock(writes[stream], r_en[stream])
        for instance, model in models.items():
            valid, ready = model.out_valid, out_ready[instance]
            for stream in readers[instance]:
                taken_by[stream] = False if valid and ready else taken_by[stream] or writes[stream]
            model.clock(taken_inputs[instance], ready)
            moved = moved or taken_inputs[instance]
        idle = 0 if moved else idle + 1
        cycle += 1
    result.cycles = last - first + 1
    return result

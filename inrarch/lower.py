"""Lowering: every IR node becomes a parameterized core from ``cores/``; edges become streams.

The result is a :class:`Netlist`: core instances, and the streams between an instance's output
and the input ports that read it. Where one output feeds several readers, a fork splits it; every
reader gets its own FIFO, whose depth the latency solver (:mod:`inrarch.schedule`) sets.

Two knobs fill a DSP budget. Each matmul gets its own number of multipliers per lane (its
*parallelism*), the fewest that keep up with a common *pace* in cycles per group of samples.
And every stream inside the design carries ``lanes`` samples per beat, lane ``s`` being sample
``s`` of a group: every core then computes ``lanes`` samples at once with ``lanes`` times its
multipliers, while a matmul still reads each weight once for all its lanes, so the weight memory
does not grow with the lanes. The input pacer interleaves each group of samples into lanes and a
:class:`~cores.plumbing.LaneSerializer` on each output puts them back in sample order, so the
design's ports carry one element per beat, sample after sample, whatever the lanes.
"""

from dataclasses import dataclass, field, replace

from cores.model import Blueprint
from cores.plumbing import LaneSerializer, RelayStation, StreamFIFO
from devices import ULTRASCALE_PLUS, Device

from .errors import CompileError
from .ir import Node
from .ops import OPS
from .resources import core_dsps, design_dsps
from .schedule import solve

__all__ = ["Target", "Instance", "Stream", "Netlist", "lower", "choose_parallelism", "choose_lanes",
           "LANE_CANDIDATES"]


@dataclass(frozen=True)
class Target:
    """What the registry's lowerings build cores for (:meth:`inrarch.ops.OpSpec.lower`): the device
    at its clock, and the choices lowering made for the whole design.

    Attributes
    ----------
    device : devices.Device
    clock_mhz : float
    parallel : dict
        Node → multipliers per lane, for the nodes of a folded op (:class:`inrarch.ops.Fold`);
        one for a node it does not name.
    period : int
        Cycles per group of samples that the design's cores need: the input admits groups no faster.
    """

    device: Device = ULTRASCALE_PLUS
    clock_mhz: float = 300.0
    parallel: dict = field(default_factory=dict)
    period: int = 1

    @property
    def multiplier(self):
        """The operand widths of the device's DSP multiplier, which products are split for."""
        return self.device.multiplier

    @property
    def pipelining(self):
        """The optional pipeline registers the cores need at the clock (:meth:`devices.Device.pipelining`)."""
        return self.device.pipelining(self.clock_mhz)


@dataclass(eq=False)
class Instance:
    """One core in the design: what it computes (``node``), the core, and its port names.

    ``blueprint`` builds the core (:class:`cores.model.Blueprint`): ``core`` is its model, and
    the component exists only once the design is elaborated (:class:`inrarch.top.DataflowDesign`).
    ``actor`` is what computes the node: the core's model, or the channel of a core that computes
    several nodes (:meth:`cores.matmul.MatVecModel.channel`); its ``contract`` and ``cycle_model``
    are the node's. ``format`` is the number format of its output.
    """

    name: str
    node: object
    blueprint: Blueprint
    inputs: tuple          # input port names, in the order of node.inputs
    output: str            # output port name
    actor: object
    format: object

    @property
    def core(self):
        return self.blueprint.model

    @property
    def contract(self):
        return self.actor.contract

    def cycle_model(self, firings):
        """The node's :class:`~cores.contract.CycleModel`, for a run of ``firings`` firings."""
        return self.actor.cycle_model(firings)

    @property
    def firings_per_group(self):
        """Firings per group of samples (one sample per lane): beats in, over beats per firing."""
        consumed = self.contract.consumes[self.inputs[0]]
        return self.node.inputs[0].numel // consumed if self.node.inputs else 1

    @property
    def busy_cycles(self):
        """Cycles per group of samples in which the core is busy: no design can admit groups faster."""
        return self.contract.ii * self.firings_per_group


@dataclass(eq=False)
class Stream:
    """Tokens from ``source``'s output to port ``port`` of ``sink`` (``sink=None``: a design output),
    ``lanes`` elements per beat.

    On its way the tokens pass a :class:`~cores.plumbing.RelayStation` in each die of ``path``
    (the indices of the dies it passes, from its source's to its sink's, when a floorplan puts
    them in different dies; :mod:`inrarch.floorplan`), then the stream's FIFO, in its sink's die.
    """

    source: Instance
    sink: Instance
    port: str
    output_index: int = -1
    lanes: int = 1
    path: tuple = ()

    @property
    def format(self):
        """The number format of its elements."""
        return self.source.format

    @property
    def width(self):
        """Bits per beat."""
        return self.format.width * self.lanes

    @property
    def relay_latency(self):
        """Cycles its relay stations add: one per die it passes, none within a die."""
        return len(self.path) * RelayStation.latency

    @property
    def latency(self):
        """Cycles from a token's emit at the source to its first cycle at the sink: the relay
        stations' and the FIFO's."""
        return self.relay_latency + StreamFIFO.latency

    def fifo(self, depth):
        """The stream's FIFO of ``depth`` beats (:class:`~cores.plumbing.StreamFIFO`)."""
        return Blueprint(StreamFIFO, (self.format, depth), {"lanes": self.lanes})

    def relays(self):
        """Its :class:`~cores.plumbing.RelayStation` cores to build, one per die of ``path``."""
        return [Blueprint(RelayStation, (self.format,), {"lanes": self.lanes}) for _ in self.path]


def die_path(start, end):
    """Indices of the dies from die ``start`` to die ``end``, both included, in order."""
    step = 1 if end >= start else -1
    return tuple(range(start, end + step, step))


@dataclass
class Netlist:
    instances: list = field(default_factory=list)
    streams: list = field(default_factory=list)
    source: Instance = None
    outputs: list = field(default_factory=list)   # one Stream per design output, in order
    period: int = 0               # cycles between groups of ``lanes`` samples
    dsps: int = 0
    lanes: int = 1                # samples per beat inside the design
    formats: object = None        # the number formats it was lowered with (inrarch.formats.Formats)
    schedules: dict = field(default_factory=dict)  # batch -> its SolvedSchedule, as solved so far
    floorplan: object = None      # on a multi-die device: the inrarch.floorplan.Floorplan
    dies: dict = field(default_factory=dict)  # instance name (None: the memory ports) -> die index

    def load_path(self, instance):
        """The dies whose :class:`~cores.weights.LoadRelay` carry the weight words of ``instance``
        (one of :meth:`loaded`) from the weight loader, in the memory ports' die, to its own: one
        relay in each die the words pass, none within a die (as a :class:`Stream`'s ``path``)."""
        if not self.dies or self.dies[instance.name] == self.dies[None]:
            return ()
        return die_path(self.dies[None], self.dies[instance.name])

    def samples(self, batch):
        """``batch`` rounded up to whole groups of :attr:`lanes` samples: the samples the design
        computes for it (the last group is padded)."""
        return -(-batch // self.lanes) * self.lanes

    def critical(self):
        """The core with the most busy cycles per group of samples (:attr:`Instance.busy_cycles`):
        it bounds the throughput. The input pacer when there is no other core; None before it."""
        cores = [instance for instance in self.instances if instance is not self.source]
        return max(cores, key=lambda instance: instance.busy_cycles, default=self.source)

    def loaded(self):
        """The instances whose cores hold runtime weights (their models' ``runtime_weights``), a core
        shared by two instances once, in netlist order: the order of their segments in the weight
        image."""
        found, seen = [], set()
        for instance in self.instances:
            if getattr(instance.core, "runtime_weights", False) and id(instance.blueprint) not in seen:
                seen.add(id(instance.blueprint))
                found.append(instance)
        return found

    def readers(self, instance):
        """The streams that carry ``instance``'s output, in netlist order."""
        return self.readers_by_source().get(id(instance), [])

    def readers_by_source(self):
        """``{id(instance): streams reading it}`` for every instance at once."""
        readers = {}
        for stream in self.streams:
            readers.setdefault(id(stream.source), []).append(stream)
        return readers


def _stream_cycles(node):
    return max([node.numel] + [source.numel for source in node.inputs])


def stream_pace(graph):
    """Cycles per sample of the longest tensor stream: no core can go faster than that."""
    return max(_stream_cycles(node) for node in graph.nodes)


def _folded(graph):
    """The nodes whose op folds to a DSP budget (:class:`inrarch.ops.Fold`)."""
    return [node for node in graph.nodes if OPS[node.op].fold is not None]


def choose_parallelism(graph, pace, max_parallel=None):
    """Multipliers per lane of every folded node (the matmuls), the fewest that take no more than
    ``pace`` cycles per sample."""
    choice = {}
    for node in _folded(graph):
        fold = OPS[node.op].fold
        limit = fold.limit(node) if max_parallel is None else max(1, min(fold.limit(node), max_parallel))
        low, high = 1, limit
        while low < high:
            middle = (low + high) // 2
            if fold.cycles(node, middle) <= pace:
                high = middle
            else:
                low = middle + 1
        choice[node] = low
    return choice


def _serializer_node(node):
    """The node a design output's :class:`~cores.plumbing.LaneSerializer` stands for: ``node`` again,
    in sample order. Not part of the graph."""
    return Node("serialize", [node], node.shape, name=f"{node.name}_serial")


def _netlist(graph, formats, target, lanes):
    """The design of ``graph`` with ``lanes`` lanes: every node lowered by its registry entry for
    ``target``, the input last, at the pace the other cores need."""
    netlist = Netlist(lanes=lanes, formats=formats)
    by_node, endpoints = {}, {}
    for node in graph.nodes:
        if node is graph.input:
            continue
        if node not in endpoints:
            lowered = OPS[node.op].lower(node, formats, target, lanes)
            endpoints.update({n: (lowered.blueprint, endpoint) for n, endpoint in lowered.endpoints.items()})
        blueprint, endpoint = endpoints[node]
        instance = Instance(node.name, node, blueprint, endpoint.inputs, endpoint.output, endpoint.actor, formats[node])
        by_node[node] = instance
        netlist.instances.append(instance)
    outputs = []
    for node in graph.outputs:
        if lanes == 1:
            outputs.append(by_node[node])
            continue
        serializer = Blueprint(LaneSerializer, (formats[node], node.numel, lanes))
        serial = _serializer_node(node)
        instance = Instance(serial.name, serial, serializer, ("i",), "o", serializer.model, formats[node])
        netlist.instances.append(instance)
        by_node[serial] = instance
        outputs.append(instance)
    critical = netlist.critical()
    pace = replace(target, period=critical.busy_cycles if critical else 1)
    lowered = OPS[graph.input.op].lower(graph.input, formats, pace, lanes)
    (endpoint,) = lowered.endpoints.values()
    netlist.source = Instance("input", graph.input, lowered.blueprint, endpoint.inputs, endpoint.output,
                              endpoint.actor, formats[graph.input])
    netlist.period = netlist.source.core.period
    netlist.instances.insert(0, netlist.source)
    by_node[graph.input] = netlist.source
    for instance in netlist.instances[1:]:
        for port, source in zip(instance.inputs, instance.node.inputs):
            netlist.streams.append(Stream(by_node[source], instance, port, lanes=lanes))
    for index, instance in enumerate(outputs):
        stream = Stream(instance, None, f"y{index}", output_index=index)
        netlist.streams.append(stream)
        netlist.outputs.append(stream)
    netlist.dsps = design_dsps(netlist)
    return netlist


class _Folding:
    """The DSP slices a design needs at each pace (cycles per group of samples) and lane count."""

    def __init__(self, graph, formats, device, max_parallel, clock_mhz=300.0):
        self.graph, self.formats, self.max_parallel = graph, formats, max_parallel
        self.target = Target(device, clock_mhz)
        self.folded = _folded(graph)
        # Every multiplier of every core is replicated per lane, so one lane's count scales.
        fixed = [node for node in graph.nodes if node is not graph.input and node not in self.folded]
        self.fixed_dsps = sum(core_dsps(OPS[node.op].lower(node, formats, self.target, 1).blueprint.model)
                              for node in fixed)
        self.fastest = stream_pace(graph)
        self._folded_dsps = {}
        self._netlists = {}
        self.slowest = max([self.fastest] + [OPS[node.op].fold.cycles(node, 1) for node in self.folded])

    def parallelism(self, pace):
        return choose_parallelism(self.graph, pace, self.max_parallel)

    def dsps(self, pace, lanes=1):
        # Every lane count bisects over the same paces: count each pace's folded DSPs once.
        if pace not in self._folded_dsps:
            target = replace(self.target, parallel=self.parallelism(pace))
            self._folded_dsps[pace] = sum(OPS[node.op].fold.dsps(node, self.formats, target) for node in self.folded)
        return lanes * (self.fixed_dsps + self._folded_dsps[pace])

    def netlist(self, pace, lanes):
        """The design at ``pace`` with ``lanes`` lanes, built once: :func:`choose_lanes` solves the
        one it then returns."""
        if (pace, lanes) not in self._netlists:
            target = replace(self.target, parallel=self.parallelism(pace))
            self._netlists[pace, lanes] = _netlist(self.graph, self.formats, target, lanes)
        return self._netlists[pace, lanes]

    def period(self, pace, lanes):
        """The period of the design at ``pace`` with ``lanes`` lanes, from its input's and outputs'
        own limits alone (no design is built): what :func:`choose_lanes` estimates with."""
        graph = self.graph
        lowered = OPS[graph.input.op].lower(graph.input, self.formats, replace(self.target, period=pace), lanes)
        tokens_out = max(node.numel for node in graph.outputs)
        return max(lowered.blueprint.model.period, LaneSerializer.cycles_per_firing(tokens_out, lanes))

    def fastest_pace(self, budget, lanes=1):
        """The fastest pace whose design fits ``budget`` with ``lanes`` lanes, or None."""
        if budget is None or self.dsps(self.fastest, lanes) <= budget:
            return self.fastest
        if self.dsps(self.slowest, lanes) > budget:
            return None
        low, high = self.fastest, self.slowest
        while low < high:
            middle = (low + high) // 2
            if self.dsps(middle, lanes) <= budget:
                high = middle
            else:
                low = middle + 1
        return low


#: Most designs with lanes :func:`choose_lanes` solves exactly, taken in the order of their estimate.
LANE_CANDIDATES = 6


def choose_lanes(folding, budget, batch):
    """Lanes and pace of the design that finishes ``batch`` samples soonest within ``budget`` DSP
    slices.

    With ``lanes`` lanes at the fastest pace that fits, a group of samples leaves every period, so
    the batch takes about ``ceil(batch / lanes)`` periods. Lanes leave fewer multipliers per lane,
    so the pace may slow, and a slower pace lengthens each sample's way through the design: lanes
    trade the latency of one sample for the time of the batch. The one-lane design and the lane
    counts with the best estimates (:data:`LANE_CANDIDATES`) are solved exactly, and the fewest
    cycles for ``batch`` win (ties: fewer lanes). A batch of one thus gets the one-lane design at
    the fastest pace, the lowest latency. Returns ``(lanes, pace)``, ``pace`` None when not even
    one lane fits.
    """
    pace = folding.fastest_pace(budget)
    if pace is None:
        return 1, None
    best = (solve(folding.netlist(pace, 1), batch).cycles, 1, pace)
    estimates = []
    for lanes in range(2, batch + 1):
        pace = folding.fastest_pace(budget, lanes)
        if pace is None:
            break
        estimates.append((-(-batch // lanes) * folding.period(pace, lanes), lanes, pace))
    for _, lanes, pace in sorted(estimates)[:LANE_CANDIDATES]:
        best = min(best, (solve(folding.netlist(pace, lanes), batch).cycles, lanes, pace))
    return best[1], best[2]


def lower(graph, formats, *, device=ULTRASCALE_PLUS, dsp_budget=None, max_parallel=None, batch=1, lanes=None,
          clock_mhz=300.0):
    """Lower ``graph`` with the number formats ``formats`` (:class:`inrarch.formats.Formats`) to a
    :class:`Netlist` that fills ``dsp_budget``.

    This is FINN-style folding done automatically. Every matmul gets its own multiplier count,
    the fewest that keep up with a common pace (cycles per group of samples); with a DSP budget,
    the pace and the number of sample lanes are those that finish ``batch`` samples soonest while
    the estimated DSP slices fit (:func:`choose_lanes`). Without a budget the design has one lane
    at the fastest pace, unless ``lanes`` is given. Matmul products are split for the DSP
    multipliers of ``device`` (:class:`devices.Device`), and the cores that multiply get the
    pipeline registers they need at ``clock_mhz`` on it (:meth:`devices.Device.pipelining`).
    """
    folding = _Folding(graph, formats, device, max_parallel, clock_mhz)
    if lanes is None and dsp_budget is not None:
        lanes, pace = choose_lanes(folding, dsp_budget, batch)
    else:
        lanes = lanes or 1
        pace = folding.fastest_pace(dsp_budget, lanes)
    if pace is None:
        raise CompileError(f"the design needs at least {folding.dsps(folding.slowest, lanes)} DSP slices even with "
                           f"one multiplier per matmul{f' and {lanes} lanes' if lanes > 1 else ''}, over the budget "
                           f"of {dsp_budget}")
    return folding.netlist(pace, lanes)

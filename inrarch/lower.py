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

from dataclasses import dataclass, field

from cores.matmul import MatVec
from cores.pacer import Pacer
from cores.plumbing import LaneSerializer, StreamFIFO
from devices import ULTRASCALE_PLUS

from .errors import CompileError
from .ir import Node
from .ops import OPS
from .passes import weight_pairs
from .resources import core_dsps, design_dsps
from .schedule import solve

__all__ = ["Instance", "Stream", "Netlist", "lower", "choose_parallelism", "node_core",
           "weight_width", "choose_lanes", "LANE_CANDIDATES"]


def weight_width(node):
    """Bits of the stored matrix a matmul node reads: ``meta["weight_width"]``, which the number
    formats (:mod:`inrarch.formats`) set."""
    return node.meta["weight_width"]


@dataclass(eq=False)
class Instance:
    """One core in the design: what it computes (``node``), the core, and its port names.

    ``actor`` is what computes the node: the core, or the channel of a core that computes several
    nodes (:meth:`cores.matmul.MatVecModel.channel`); its ``contract`` and ``cycle_model`` are
    the node's.
    """

    name: str
    node: object
    core: object
    inputs: tuple          # input port names, in the order of node.inputs
    output: str            # output port name
    actor: object

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
    ``lanes`` elements per beat."""

    source: Instance
    sink: Instance
    port: str
    output_index: int = -1
    lanes: int = 1

    @property
    def width(self):
        """Bits per beat."""
        return self.source.node.meta["format"].width * self.lanes

    def fifo(self, depth):
        """The model of the stream's FIFO of ``depth`` beats (:class:`~cores.plumbing.StreamFIFO`)."""
        return StreamFIFO.model(self.source.node.meta["format"], depth, lanes=self.lanes)


@dataclass
class Netlist:
    instances: list = field(default_factory=list)
    streams: list = field(default_factory=list)
    source: Instance = None
    outputs: list = field(default_factory=list)   # one Stream per design output, in order
    period: int = 0               # cycles between groups of ``lanes`` samples
    dsps: int = 0
    lanes: int = 1                # samples per beat inside the design

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
        """The instances whose cores hold runtime weights (a ``load`` port), a core shared by two
        instances once, in netlist order: the order of their segments in the weight image."""
        found, seen = [], set()
        for instance in self.instances:
            if hasattr(instance.core, "load") and id(instance.core) not in seen:
                seen.add(id(instance.core))
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


def choose_parallelism(graph, pace, max_parallel=None):
    """Multipliers per matmul so that none takes more than ``pace`` cycles per sample."""
    choice = {}
    for node in graph.nodes:
        if node.op != "matmul":
            continue
        n_in, n_out = node.inputs[0].shape[-1], node.shape[-1]
        rows = node.numel // n_out
        limit = min(n_in, n_out) if max_parallel is None else max(1, min(n_in, n_out, max_parallel))
        low, high = 1, limit
        while low < high:
            middle = (low + high) // 2
            if MatVec.cycles_per_sample(rows, n_in, n_out, middle) <= pace:
                high = middle
            else:
                low = middle + 1
        choice[node] = low
    return choice


def node_core(node, device=ULTRASCALE_PLUS, lanes=1, clock_mhz=300.0):
    """The core that computes ``node`` (any op but ``input`` and ``matmul``) on ``device`` for
    ``lanes`` samples per beat, its input port names in the order of ``node.inputs``, and its
    output port name. A core that multiplies gets the pipeline registers it needs at
    ``clock_mhz`` on ``device`` (:meth:`devices.Device.pipelining`)."""
    spec = OPS[node.op]
    if spec.core is None:
        raise CompileError(f"no core implements IR op {node.op!r}")
    args, kwargs = spec.arguments(node, [source.meta["format"] for source in node.inputs], node.meta["format"])
    if spec.multiplies:
        kwargs["dsp_shape"] = device.multiplier
        kwargs["pipelining"] = device.pipelining(clock_mhz)
    core = spec.core
    if lanes > 1:
        core, args, kwargs = spec.sample_lanes(core, args, kwargs, lanes)
    core = core(*args, **kwargs)
    return core, spec.ports(node), spec.output, core


def _analysed_only(core):
    """Mark ``core`` as fine to leave unelaborated: a design may be solved and reported without
    ever being converted to Verilog, and amaranth would warn about every core it never used."""
    core._MustUse__silence = True
    return core


def _matmul_groups(graph):
    """Matmuls that become one MatVec: pairs on the same matrix (two channels), then the rest alone."""
    pairs = weight_pairs(graph)
    paired = {id(n) for pair in pairs for n in pair}
    return pairs + [[n] for n in graph.nodes if n.op == "matmul" and id(n) not in paired]


def _effective_parallel(nodes, parallel):
    rows, cols = nodes[0].attrs["weight"].matrix.shape
    return min(max(parallel[n] for n in nodes), rows, cols)


def _matmul_dsps(groups, parallel, device):
    return sum(_effective_parallel(nodes, parallel) * len(nodes)
               * device.dsps(nodes[0].inputs[0].meta["format"].width, max(map(weight_width, nodes))) for nodes in groups)


def _matmul_cores(groups, parallel, device, lanes):
    cores = {}
    for nodes in groups:
        channels = tuple("transpose" if n.attrs["transposed"] else "forward" for n in nodes)
        core = MatVec(nodes[0].attrs["weight"].matrix, nodes[0].inputs[0].meta["format"], nodes[0].meta["format"],
                      channels=channels, parallel=_effective_parallel(nodes, parallel), lanes=lanes,
                      weight_width=max(map(weight_width, nodes)), weight_bound=nodes[0].meta.get("bound"),
                      dsp_shape=device.multiplier)
        for k, node in enumerate(nodes):
            channel = core.channel(k)
            cores[node] = (core, channel.inputs, channel.output, channel)
    return cores


def _serializer_node(node):
    """The node a design output's :class:`~cores.plumbing.LaneSerializer` stands for: ``node`` again,
    in sample order. Not part of the graph."""
    return Node("serialize", [node], node.shape, meta={"format": node.meta["format"]}, name=f"{node.name}_serial")


def _netlist(graph, cores, lanes):
    netlist = Netlist(lanes=lanes)
    by_node = {}
    for node in graph.nodes:
        if node.op == "input":
            continue
        core, inputs, output, actor = cores[node]
        instance = Instance(node.name, node, _analysed_only(core), inputs, output, actor)
        by_node[node] = instance
        netlist.instances.append(instance)
    outputs = []
    for node in graph.outputs:
        if lanes == 1:
            outputs.append(by_node[node])
            continue
        serializer = _analysed_only(LaneSerializer(node.meta["format"], node.numel, lanes))
        serial = _serializer_node(node)
        instance = Instance(serial.name, serial, serializer, ("i",), "o", serializer)
        netlist.instances.append(instance)
        by_node[serial] = instance
        outputs.append(instance)
    critical = netlist.critical()
    netlist.period = max(critical.busy_cycles if critical else 1, Pacer.min_period(graph.input.numel, lanes))
    pacer = _analysed_only(Pacer(graph.input.meta["format"], graph.input.numel, netlist.period, lanes=lanes))
    netlist.source = Instance("input", graph.input, pacer, ("i",), "o", pacer)
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


def _fixed_cores(graph, device, lanes, clock_mhz):
    """Every core but the matmuls', for ``lanes`` samples per beat at ``clock_mhz``."""
    fixed = {}
    for node in graph.nodes:
        if node.op not in ("input", "matmul"):
            core, inputs, output, actor = node_core(node, device, lanes, clock_mhz)
            fixed[node] = (_analysed_only(core), inputs, output, actor)
    return fixed


class _Folding:
    """The DSP slices a design needs at each pace (cycles per group of samples) and lane count."""

    def __init__(self, graph, device, max_parallel, clock_mhz=300.0):
        self.graph, self.device, self.max_parallel, self.clock_mhz = graph, device, max_parallel, clock_mhz
        self.groups = _matmul_groups(graph)
        # Every multiplier of every core is replicated per lane, so one lane's count scales.
        self.fixed_dsps = sum(core_dsps(core) for core, *_ in _fixed_cores(graph, device, 1, clock_mhz).values())
        self.fastest = stream_pace(graph)
        self._matmul_dsps = {}
        self._netlists = {}
        self.slowest = max([self.fastest] + [node.numel * node.inputs[0].shape[-1]
                                             for node in graph.nodes if node.op == "matmul"])

    def parallelism(self, pace):
        return choose_parallelism(self.graph, pace, self.max_parallel)

    def dsps(self, pace, lanes=1):
        # Every lane count bisects over the same paces: count each pace's matmul DSPs once.
        if pace not in self._matmul_dsps:
            self._matmul_dsps[pace] = _matmul_dsps(self.groups, self.parallelism(pace), self.device)
        return lanes * (self.fixed_dsps + self._matmul_dsps[pace])

    def netlist(self, pace, lanes):
        """The design at ``pace`` with ``lanes`` lanes, built once: :func:`choose_lanes` solves the
        one it then returns."""
        if (pace, lanes) not in self._netlists:
            cores = _fixed_cores(self.graph, self.device, lanes, self.clock_mhz)
            cores.update(_matmul_cores(self.groups, self.parallelism(pace), self.device, lanes))
            self._netlists[pace, lanes] = _netlist(self.graph, cores, lanes)
        return self._netlists[pace, lanes]

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
    graph = folding.graph
    tokens_in = graph.input.numel
    tokens_out = max(node.numel for node in graph.outputs)
    pace = folding.fastest_pace(budget)
    if pace is None:
        return 1, None
    best = (solve(folding.netlist(pace, 1), batch).cycles, 1, pace)
    estimates = []
    for lanes in range(2, batch + 1):
        pace = folding.fastest_pace(budget, lanes)
        if pace is None:
            break
        period = max(pace, Pacer.min_period(tokens_in, lanes), LaneSerializer.cycles_per_firing(tokens_out, lanes))
        estimates.append((-(-batch // lanes) * period, lanes, pace))
    for _, lanes, pace in sorted(estimates)[:LANE_CANDIDATES]:
        best = min(best, (solve(folding.netlist(pace, lanes), batch).cycles, lanes, pace))
    return best[1], best[2]


def lower(graph, *, device=ULTRASCALE_PLUS, dsp_budget=None, max_parallel=None, batch=1, lanes=None,
          clock_mhz=300.0):
    """Lower ``graph`` (formats assigned) to a :class:`Netlist` that fills ``dsp_budget``.

    This is FINN-style folding done automatically. Every matmul gets its own multiplier count,
    the fewest that keep up with a common pace (cycles per group of samples); with a DSP budget,
    the pace and the number of sample lanes are those that finish ``batch`` samples soonest while
    the estimated DSP slices fit (:func:`choose_lanes`). Without a budget the design has one lane
    at the fastest pace, unless ``lanes`` is given. Matmul products are split for the DSP
    multipliers of ``device`` (:class:`devices.Device`), and the cores that multiply get the
    pipeline registers they need at ``clock_mhz`` on it (:meth:`devices.Device.pipelining`).
    """
    folding = _Folding(graph, device, max_parallel, clock_mhz)
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

"""Lowering: every IR node becomes a parameterized core from ``cores/``; edges become streams.

The result is a :class:`Netlist`: core instances, and the streams between an instance's output
and the input ports that read it. Where one output feeds several readers, a fork splits it; every
reader gets its own FIFO, whose depth the latency solver (:mod:`inrarch.schedule`) sets.
"""

import math
from dataclasses import dataclass, field

from cores.matmul import MatVec
from cores.pacer import Pacer
from devices import ULTRASCALE_PLUS

from .errors import CompileError
from .ops import OPS
from .passes import weight_pairs
from .resources import core_dsps, design_dsps

__all__ = ["Instance", "Stream", "Netlist", "lower", "matmul_cycles", "choose_parallelism", "node_core",
           "weight_width"]


def weight_width(node):
    """Bits of the stored matrix a matmul node reads: ``meta["weight_width"]``, which the number
    formats (:mod:`inrarch.formats`) set."""
    return node.meta["weight_width"]


@dataclass(eq=False)
class Instance:
    """One core in the design: what it computes (``node``), the core, and its port names."""

    name: str
    node: object
    core: object
    inputs: tuple          # input port names, in the order of node.inputs
    output: str            # output port name
    contract: object

    @property
    def firings_per_sample(self):
        consumed = self.contract.consumes[self.inputs[0]]
        return self.node.inputs[0].numel // consumed if self.node.inputs else 1


@dataclass(eq=False)
class Stream:
    """Tokens from ``source``'s output to port ``port`` of ``sink`` (``sink=None``: a design output)."""

    source: Instance
    sink: Instance
    port: str
    output_index: int = -1


@dataclass
class Netlist:
    instances: list = field(default_factory=list)
    streams: list = field(default_factory=list)
    source: Instance = None
    outputs: list = field(default_factory=list)   # one Stream per design output, in order
    period: int = 0
    dsps: int = 0

    def readers(self, instance):
        """The streams that carry ``instance``'s output, in netlist order."""
        return self.readers_by_source().get(id(instance), [])

    def readers_by_source(self):
        """``{id(instance): streams reading it}`` for every instance at once."""
        readers = {}
        for stream in self.streams:
            readers.setdefault(id(stream.source), []).append(stream)
        return readers


def matmul_cycles(rows, n_in, n_out, parallel):
    """Cycles per sample of a MatVec channel: one firing per row of ``rows``."""
    effective = max(1, min(parallel, n_in))
    return rows * n_in * math.ceil(n_out / effective)


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
            if matmul_cycles(rows, n_in, n_out, middle) <= pace:
                high = middle
            else:
                low = middle + 1
        choice[node] = low
    return choice


def node_core(node, device=ULTRASCALE_PLUS):
    """The core that computes ``node`` (any op but ``input`` and ``matmul``) on ``device``, its
    input port names in the order of ``node.inputs``, and its output port name."""
    spec = OPS[node.op]
    if spec.core is None:
        raise CompileError(f"no core implements IR op {node.op!r}")
    args, kwargs = spec.arguments(node, [source.meta["format"] for source in node.inputs], node.meta["format"])
    if spec.multiplies:
        kwargs["dsp_shape"] = device.multiplier
    return spec.core(*args, **kwargs), spec.ports(node), spec.output


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


def _matmul_cores(groups, parallel, device):
    cores = {}
    for nodes in groups:
        channels = tuple("transpose" if n.attrs["transposed"] else "forward" for n in nodes)
        core = MatVec(nodes[0].attrs["weight"].matrix, nodes[0].inputs[0].meta["format"], nodes[0].meta["format"],
                      channels=channels, parallel=_effective_parallel(nodes, parallel),
                      weight_width=max(map(weight_width, nodes)), dsp_shape=device.multiplier)
        for k, node in enumerate(nodes):
            cores[node] = (core, (f"x{k}",), f"o{k}", core.contracts[k])
    return cores


def _netlist(graph, cores):
    netlist = Netlist()
    by_node = {}
    for node in graph.nodes:
        if node.op == "input":
            continue
        core, inputs, output, contract = cores[node]
        instance = Instance(node.name, node, _analysed_only(core), inputs, output, contract)
        by_node[node] = instance
        netlist.instances.append(instance)
    busiest = max((instance.contract.ii * instance.firings_per_sample for instance in netlist.instances), default=1)
    tokens = graph.input.numel
    netlist.period = max(busiest, 2 * tokens)
    pacer = _analysed_only(Pacer(graph.input.meta["format"], tokens, netlist.period))
    netlist.source = Instance("input", graph.input, pacer, ("i",), "o", pacer.contract)
    netlist.instances.insert(0, netlist.source)
    by_node[graph.input] = netlist.source
    for instance in netlist.instances[1:]:
        for port, source in zip(instance.inputs, instance.node.inputs):
            netlist.streams.append(Stream(by_node[source], instance, port))
    for index, node in enumerate(graph.outputs):
        stream = Stream(by_node[node], None, f"y{index}", output_index=index)
        netlist.streams.append(stream)
        netlist.outputs.append(stream)
    netlist.dsps = design_dsps(netlist)
    return netlist


def lower(graph, *, device=ULTRASCALE_PLUS, dsp_budget=None, max_parallel=None):
    """Lower ``graph`` (formats assigned) to a :class:`Netlist` at the fastest pace that fits.

    This is FINN-style folding done automatically: every matmul gets its own multiplier count,
    the fewest that keep up with a common pace (cycles per sample), and the pace is the fastest
    whose estimated DSP count fits ``dsp_budget``, found by bisection. Matmul products are split
    for the DSP multipliers of ``device`` (:class:`devices.Device`).
    """
    fixed = {}
    for node in graph.nodes:
        if node.op not in ("input", "matmul"):
            core, inputs, output = node_core(node, device)
            fixed[node] = (core, inputs, output, core.contract)
    fixed_dsps = sum(core_dsps(core) for core, *_ in fixed.values())
    groups = _matmul_groups(graph)

    def dsps_at(pace):
        return fixed_dsps + _matmul_dsps(groups, choose_parallelism(graph, pace, max_parallel), device)

    pace = stream_pace(graph)
    if dsp_budget is not None and dsps_at(pace) > dsp_budget:
        slowest = max([pace] + [node.numel * node.inputs[0].shape[-1] for node in graph.nodes if node.op == "matmul"])
        if dsps_at(slowest) > dsp_budget:
            raise CompileError(f"the design needs at least {dsps_at(slowest)} DSP slices even with one multiplier "
                               f"per matmul, over the budget of {dsp_budget}")
        low, high = pace, slowest
        while low < high:
            middle = (low + high) // 2
            if dsps_at(middle) <= dsp_budget:
                high = middle
            else:
                low = middle + 1
        pace = low
    cores = dict(fixed)
    cores.update(_matmul_cores(groups, choose_parallelism(graph, pace, max_parallel), device))
    return _netlist(graph, cores)

"""Lowering: every IR node becomes a parameterized core from ``cores/``; edges become streams.

The result is a :class:`Netlist`: core instances, and the streams between an instance's output
and the input ports that read it. Where one output feeds several readers, a fork splits it; every
reader gets its own FIFO, whose depth the latency solver (:mod:`inrarch.schedule`) sets.
"""

import math
from dataclasses import dataclass, field

from cores.elementwise import Add, AddConst, Mul, MulConst, Neg, Scale, Sub
from cores.matmul import MatVec
from cores.nonlinear import Cos, Exp, Relu, Sigmoid, Sin, Step, Tanh
from cores.pacer import Pacer
from cores.plumbing import Gather
from cores.reduce import Sum

from .errors import CompileError

__all__ = ["Instance", "Stream", "Netlist", "lower", "matmul_cycles"]

_NONLINEAR_CORES = {"sin": Sin, "cos": Cos, "tanh": Tanh, "sigmoid": Sigmoid, "exp": Exp, "relu": Relu, "step": Step}


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
    depth: int = 0


@dataclass
class Netlist:
    instances: list = field(default_factory=list)
    streams: list = field(default_factory=list)
    source: Instance = None
    outputs: list = field(default_factory=list)   # one Stream per design output, in order
    period: int = 0

    def readers(self, instance):
        return [stream for stream in self.streams if stream.source is instance]


def matmul_cycles(rows, n_in, n_out, parallel):
    """Cycles per sample of a MatVec channel: one firing per row of ``rows``."""
    effective = max(1, min(parallel, n_in))
    return rows * n_in * math.ceil(n_out / effective)


def _stream_cycles(node):
    return max([node.numel] + [source.numel for source in node.inputs])


def choose_parallelism(graph, max_parallel=None):
    """Multipliers per matmul so that none is slower than the slowest streaming core.

    With one element per cycle on every stream, a sample cannot pass faster than its longest
    tensor streams; each matmul gets the fewest multipliers that keep up with that pace.
    """
    pace = max(_stream_cycles(node) for node in graph.nodes)
    choice = {}
    for node in graph.nodes:
        if node.op != "matmul":
            continue
        n_in, n_out = node.inputs[0].shape[-1], node.shape[-1]
        rows = node.numel // n_out
        parallel = 1
        while matmul_cycles(rows, n_in, n_out, parallel) > pace and parallel < min(n_in, n_out):
            parallel += 1
        if max_parallel is not None:
            parallel = min(parallel, max_parallel)
        choice[node] = parallel
    return choice


def _core_for(node, parallel):
    fmt = node.attrs["format"]
    ins = [source.attrs["format"] for source in node.inputs]
    op = node.op
    if op in ("add", "sub", "mul"):
        core = {"add": Add, "sub": Sub, "mul": Mul}[op](ins[0], ins[1], fmt)
        return core, ("a", "b"), "o"
    if op == "neg":
        return Neg(ins[0], fmt), ("a",), "o"
    if op == "scale":
        return Scale(ins[0], fmt, node.attrs["value"]), ("a",), "o"
    if op in ("add_const", "mul_const"):
        cls = AddConst if op == "add_const" else MulConst
        return cls(ins[0], fmt, node.attrs["values"].reshape(-1)), ("a",), "o"
    if op in _NONLINEAR_CORES:
        kwargs = {"scale": node.attrs.get("scale", 1.0)}
        return _NONLINEAR_CORES[op](ins[0], fmt, **kwargs), ("a",), "o"
    if op == "matmul":
        channel = "transpose" if node.attrs["transposed"] else "forward"
        core = MatVec(node.attrs["weight"].matrix, ins[0], fmt, channels=(channel,), parallel=parallel[node])
        return core, ("x0",), "o0"
    if op == "sum":
        return Sum(ins[0], fmt, node.attrs["group"]), ("a",), "o"
    if op == "gather":
        inputs = [(source.attrs["format"], source.numel) for source in node.inputs]
        core = Gather(inputs, fmt, node.attrs["entries"])
        return core, tuple(f"i{k}" for k in range(len(node.inputs))), "o"
    raise CompileError(f"no core implements IR op {op!r}")


def _analysed_only(core):
    """Mark ``core`` as fine to leave unelaborated: a design may be solved and reported without
    ever being converted to Verilog, and amaranth would warn about every core it never used."""
    core._MustUse__silence = True
    return core


def _contract(core):
    return core.contracts[0] if hasattr(core, "contracts") else core.contract


def lower(graph, *, period=None, max_parallel=None):
    """Map ``graph`` (with formats assigned) to a :class:`Netlist` of cores."""
    parallel = choose_parallelism(graph, max_parallel)
    netlist = Netlist()
    by_node = {}
    for node in graph.nodes:
        if node.op == "input":
            continue
        core, inputs, output = _core_for(node, parallel)
        _analysed_only(core)
        instance = Instance(node.name, node, core, inputs, output, _contract(core))
        by_node[node] = instance
        netlist.instances.append(instance)
    busiest = max((instance.contract.ii * instance.firings_per_sample for instance in netlist.instances), default=1)
    tokens = graph.input.numel
    netlist.period = max(busiest, 2 * tokens) if period is None else period
    pacer = _analysed_only(Pacer(graph.input.attrs["format"], tokens, netlist.period))
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
    return netlist

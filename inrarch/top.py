# amaranth: UnusedElaboratable=no
# (Identical parts become one shared module, cores.shared: a part that stands for its module is not elaborated.)
"""The top-level Amaranth component of a compiled design: cores, forks and FIFOs, wired."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cores.plumbing import Fork
from cores.ports import lanes_signature
from cores.shared import Shared, module_name
from cores.weights import LoadRelay, WeightLoader, image_signature

from .schedule import load_relays

__all__ = ["DataflowDesign", "fifo_names"]


class DataflowDesign(wiring.Component):
    """A streaming dataflow design compiled from a gradient graph.

    Parameters
    ----------
    netlist : inrarch.lower.Netlist
        Cores and streams.
    depths : dict of Stream to int
        The depth of each stream's FIFO: the latency solver's (:attr:`inrarch.schedule.SolvedSchedule.depths`).

    Ports
    -----
    x : In(stream.Signature(ArrayLayout(signed, 1)))
        Input samples, their elements one per beat in row-major order.
    y0, y1, ... : Out(stream.Signature(ArrayLayout(signed, 1)))
        One stream per output of the compiled function, elements of each sample in row-major order.
    overflow : Out(1)
        Sticky: some core saturated a value that did not fit its format.
    overflow_core : Out(range(cores + 1))
        1 + index (in ``netlist.instances``) of the first core that overflowed; 0 while none has.
    fifo_full, fifo_empty : Out(fifos)
        Bit ``k`` is set while FIFO ``fifo_names[k]`` is full (cannot take a word) or empty. A
        simulation that stops moving reads them to name the blocked FIFOs.
    weights : In(cores.weights.image_signature())
        Only in a design with runtime weights: the weight image, whose words fill the cores'
        memories in the order of :meth:`inrarch.lower.Netlist.loaded` (layout: :mod:`cores.weights`).
        A :class:`~cores.weights.WeightLoader` takes it between batches: it holds ``x`` at the next
        group of samples, waits until every sample taken has left, loads the whole image, and then
        takes samples again.
    """

    def __init__(self, netlist, depths):
        self._netlist = netlist
        self._depths = depths
        members = {"x": In(lanes_signature(netlist.source.format))}
        for stream in netlist.outputs:
            members[stream.port] = Out(lanes_signature(stream.format))
        members["overflow"] = Out(1)
        members["overflow_core"] = Out(range(len(netlist.instances) + 1))
        self.fifo_names = fifo_names(netlist)
        members["fifo_full"] = Out(len(self.fifo_names))
        members["fifo_empty"] = Out(len(self.fifo_names))
        if netlist.loaded():
            members["weights"] = In(image_signature())
        super().__init__(members)

    @staticmethod
    def stream_name(stream, k):
        """The part of a stream's submodule names (``fifo_<name>``, ``relay<j>_<name>``) after its
        ends: ``k`` is its index among its source's readers."""
        sink_name = stream.sink.name if stream.sink is not None else stream.port
        return f"{stream.source.name}_to_{sink_name}_{stream.port}_{k}"

    def cells_by_die(self, assignment):
        """``{die index: [submodule names]}``: every core, fork, relay station and FIFO of the design,
        by the die it belongs to. ``assignment`` maps each instance's name to its die: a core's
        fork is in its die, a stream's relay station ``j`` in die ``stream.path[j]``, its FIFO in
        its sink's die, a design output's FIFO and the weight loader (runtime weights) in the die
        the assignment gives ``None``."""
        netlist = self._netlist
        cells = {}
        seen = set()
        for instance in netlist.instances:
            die = assignment[instance.name]
            if id(instance.blueprint) not in seen:
                seen.add(id(instance.blueprint))
                cells.setdefault(die, []).append(instance.name)
            readers = netlist.readers(instance)
            if len(readers) > 1:
                cells.setdefault(die, []).append(f"{instance.name}_fork")
            for k, stream in enumerate(readers):
                name = self.stream_name(stream, k)
                for j, relay_die in enumerate(stream.path):
                    cells.setdefault(relay_die, []).append(f"relay{j}_{name}")
                sink_die = assignment[stream.sink.name if stream.sink is not None else None]
                cells.setdefault(sink_die, []).append(f"fifo_{name}")
        if netlist.loaded():
            # The weight loader takes the image from the card's memory, as the outputs' FIFOs give theirs to it.
            cells.setdefault(assignment[None], []).append("weight_loader")
            for k, instance in enumerate(netlist.loaded()):
                for j, relay_die in enumerate(netlist.load_path(instance)):
                    cells.setdefault(relay_die, []).append(f"load_relay{j}_{k}")
        return cells

    def elaborate(self, platform):
        m = Module()
        netlist = self._netlist
        built = {}  # every core built once: two matmul channels may share one
        for instance in netlist.instances:
            if id(instance.blueprint) not in built:
                built[id(instance.blueprint)] = core = instance.blueprint.build()
                m.submodules[instance.name] = _shared(core)
        cores = {instance: built[id(instance.blueprint)] for instance in netlist.instances}
        if netlist.loaded():
            self._connect_loader(m, cores, cores[netlist.source].i)
        else:
            wiring.connect(m, wiring.flipped(self.x), cores[netlist.source].i)

        fifo_of = {}
        readers_of = netlist.readers_by_source()
        for instance in netlist.instances:
            readers = readers_of.get(id(instance), [])
            output = getattr(cores[instance], instance.output)
            if len(readers) > 1:
                fork = Fork(instance.format, len(readers), lanes=readers[0].lanes)
                m.submodules[f"{instance.name}_fork"] = _shared(fork)
                wiring.connect(m, output, fork.i)
                outputs = [getattr(fork, f"o{k}") for k in range(len(readers))]
            else:
                outputs = [output]
            for k, (stream, source) in enumerate(zip(readers, outputs)):
                name = self.stream_name(stream, k)
                for j, blueprint in enumerate(stream.relays()):
                    relay = blueprint.build()
                    m.submodules[f"relay{j}_{name}"] = _shared(relay)
                    wiring.connect(m, source, relay.i)
                    source = relay.o
                fifo = stream.fifo(self._depths[stream]).build()
                m.submodules[f"fifo_{name}"] = _shared(fifo)
                wiring.connect(m, source, fifo.i)
                fifo_of[id(stream)] = fifo
                if stream.sink is None:
                    wiring.connect(m, fifo.o, wiring.flipped(getattr(self, stream.port)))
                else:
                    wiring.connect(m, fifo.o, getattr(cores[stream.sink], stream.port))

        fifos = [fifo_of[id(stream)] for stream in netlist.streams]
        m.d.comb += [self.fifo_full.eq(Cat(~fifo.i.ready for fifo in fifos)),
                     self.fifo_empty.eq(Cat(~fifo.o.valid for fifo in fifos))]

        flags, seen = [], set()
        for index, instance in enumerate(netlist.instances):
            if hasattr(cores[instance], "overflow") and id(instance.blueprint) not in seen:
                seen.add(id(instance.blueprint))
                flags.append((index, cores[instance].overflow))
        if flags:
            m.d.comb += self.overflow.eq(Cat(flag for _, flag in flags).any())
            first = Signal.like(self.overflow_core)
            with m.If(first == 0):
                for index, flag in reversed(flags):
                    with m.If(flag):
                        m.d.sync += first.eq(index + 1)
            m.d.comb += self.overflow_core.eq(first)
        return m

    def _connect_loader(self, m, cores, source):
        """A :class:`~cores.weights.WeightLoader` between ``x`` and the ``source`` pacer's input that
        fills the netlist's loaded cores (``cores`` by instance) from ``weights``, through a
        :class:`~cores.weights.LoadRelay` in each die on the way to a core in another die."""
        netlist = self._netlist
        loaded = netlist.loaded()
        outputs = [getattr(self, stream.port) for stream in netlist.outputs]
        loader = m.submodules.weight_loader = WeightLoader(
            [cores[instance].weight_layout.words for instance in loaded], self.x.payload.shape(),
            group_words=netlist.lanes * netlist.source.node.numel,
            output_group_words=[netlist.lanes * stream.source.node.numel for stream in netlist.outputs],
            relays=load_relays(netlist))
        wiring.connect(m, wiring.flipped(self.weights), loader.weights)
        m.d.comb += [loader.i.payload.eq(self.x.payload), loader.i.valid.eq(self.x.valid),
                     self.x.ready.eq(loader.i.ready),
                     loader.taken.eq(Cat(port.valid & port.ready for port in outputs)),
                     source.payload.eq(loader.o.payload), source.valid.eq(loader.o.valid),
                     loader.o.ready.eq(source.ready)]
        for k, instance in enumerate(loaded):
            port = getattr(loader, f"load{k}")
            for j in range(len(netlist.load_path(instance))):
                relay = m.submodules[f"load_relay{j}_{k}"] = LoadRelay(loader.word_bits)
                wiring.connect(m, port, relay.i)
                port = relay.o
            wiring.connect(m, port, cores[instance].load)


def fifo_names(netlist):
    """The name of every stream's FIFO in ``netlist``, in order: ``source->sink.port``."""
    return [f"{s.source.name}->{s.sink.name if s.sink is not None else 'output'}.{s.port}" for s in netlist.streams]


def _shared(core):
    """``core`` as a Verilog module of its own (see :mod:`cores.shared`), named after its class and
    keyed by everything it holds: cores that hold the same values are the same hardware."""
    return Shared(core, module_name(type(core).__name__.lower(), core))

"""A whole design's FIFO sizing, proved: with the latency solver's depths no FIFO ever refuses a
token, under any input timing that obeys the stream protocol.

:class:`FifoSizingSpec` drives a compiled design's input ``x`` freely (tokens arrive whenever
they like and hold until taken) and keeps its outputs always ready, the premise of the schedule
(:mod:`inrarch.schedule`). Its properties:

* ``<fifo>_takes_every_token``: every FIFO between two cores is ready whenever its writer offers a
  token, so no core ever waits for room: the design keeps the schedule the solver computed, with
  no deadlock;
* ``pacer_never_waits``: the input pacer's output is never stalled, so the design takes a new
  group of samples every period (the pacer's own contract, proved with the cores, admits one
  per period).

With one FIFO one entry shallower than the solver's depth, the same proof fails: a trace in
which that FIFO refuses a token.
"""

import functools

import torch
from amaranth.asserts import AnySeq
from amaranth.hdl import Assume, Elaboratable, Module, Signal

import inrarch
from inrarch.top import DataflowDesign

from .proof import check, cover, prove

__all__ = ["SIREN", "siren_design", "FifoSizingSpec", "fifo_sizing_proof", "shallower"]

#: The design of the sizing proof (and whose kernel :mod:`formal.kernel` proves): the order-1
#: derivatives of a SIREN 2→4→4→1, at batch 4.
SIREN = {"in_features": 2, "hidden": 4, "layers": 2, "out_features": 1, "w0": 30.0, "order": 1, "batch": 4}


@functools.cache
def siren_design(weights="constant"):
    """:data:`SIREN`, compiled (once per process and ``weights``: ``"runtime"`` gives its kernel a
    weights buffer)."""
    spec = dict(SIREN)
    order, batch = spec.pop("order"), spec.pop("batch")
    model = inrarch.models.siren(spec["in_features"], spec["hidden"], spec["layers"], spec["out_features"],
                                 spec["w0"], 0)
    return inrarch.compile(inrarch.derivatives(model, order), torch.zeros(batch, spec["in_features"]),
                           weights=weights)


def shallower(depths):
    """``depths`` with its first FIFO deeper than the minimum one entry shallower, and that FIFO."""
    stream = next(stream for stream, depth in depths.items() if depth > min(depths.values()))
    return {**depths, stream: depths[stream] - 1}, stream


class FifoSizingSpec(Elaboratable):
    """A compiled design's ``netlist`` with FIFO ``depths``, in a world where its input arrives at
    any time and its outputs are always ready (see the module's docstring)."""

    def __init__(self, netlist, depths, *, groups=2):
        self.netlist = netlist
        self.depths = depths
        self.groups = groups
        self.design = DataflowDesign(netlist, depths)
        self.design._MustUse__silence = True  # elaborated by the spec itself, to reach its FIFOs

    def elaborate(self, platform):
        m = Module()
        design = self.design
        # The design's own module, so that its FIFOs and pacer can be watched.
        m.submodules.design = body = design.elaborate(platform)

        x = design.x
        payload = x.payload.as_value()
        m.d.comb += [x.valid.eq(AnySeq(1)), payload.eq(AnySeq(len(payload)))]
        waiting, shown = Signal(), Signal(len(payload))
        m.d.sync += [waiting.eq(x.valid & ~x.ready), shown.eq(payload)]
        m.d.comb += Assume(~waiting | (x.valid & (payload == shown)))
        for stream in self.netlist.outputs:
            m.d.comb += getattr(design, stream.port).ready.eq(1)

        for name, fifo in self._fifos(body):
            check(m, f"{name}_takes_every_token", ~fifo.i.valid | fifo.i.ready)
        pacer = body.submodules[self.netlist.source.name].component
        check(m, "pacer_never_waits", ~pacer.o.valid | pacer.o.ready)

        # A trace in which `groups` whole groups came out of the first output.
        out = getattr(design, self.netlist.outputs[0].port)
        per_group = self.netlist.outputs[0].source.node.numel * self.netlist.lanes
        emitted = Signal(range(self.groups * per_group + 1))
        with m.If(out.valid & out.ready & (emitted != self.groups * per_group)):
            m.d.sync += emitted.eq(emitted + 1)
        cover(m, f"{self.groups}_groups_out", emitted == self.groups * per_group)
        return m

    def _fifos(self, body):
        """``(name, StreamFIFO)`` of every FIFO of the design, named as the design names them."""
        readers = self.netlist.readers_by_source()
        for stream, name in zip(self.netlist.streams, self.design.fifo_names):
            index = readers[id(stream.source)].index(stream)
            sink = stream.sink.name if stream.sink is not None else stream.port
            shared = body.submodules[f"fifo_{stream.source.name}_to_{sink}_{stream.port}_{index}"]
            yield _identifier(name), shared.component


def _identifier(name):
    return "".join(c if c.isalnum() else "_" for c in name)


def fifo_sizing_proof(netlist, depths, *, depth, mode="bmc", solver=None, directory=None, name="design", timeout=None):
    """The FIFO-sizing properties of ``netlist`` with ``depths``, bounded to ``depth`` cycles
    (``mode="bmc"``), or a trace in which two groups come out (``mode="cover"``); ``timeout`` as
    :func:`~formal.proof.prove`'s."""
    options = {} if solver is None else {"solver": solver}
    spec = FifoSizingSpec(netlist, depths)
    return prove(spec, name=name, mode=mode, depth=depth, directory=directory, timeout=timeout, **options)

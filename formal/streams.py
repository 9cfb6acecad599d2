"""The stream contract of a core, written once as formal properties, for any ``wiring.Component``
whose data ports are :mod:`amaranth.lib.stream` interfaces.

:class:`StreamContractSpec` wraps a core. Its inputs are free (``AnySeq``) under the assumption
that they obey the ready/valid protocol: a token, once valid, stays valid with the same payload
until it is taken. Its outputs' ``ready`` is free too, or always high (see ``timing``). Everything
else is read from the core's own interface (:mod:`cores.model`): its stream ports, its
``contract`` (or ``contracts``, one per channel: the ``k``-th contract's outputs are the ``k``-th
output stream) and its ``reference``. The properties, each named in a counterexample:

``protocol``
    Every output obeys the protocol too: ``<port>_holds_until_taken``.
``reads``
    The core takes its inputs in the beats of its contract: the ports of one beat in the same
    cycle, the runs of a firing in order (``<port>_read_in_order``, ``<channel>_beat_together``).
``tokens``
    No token is created: an output has emitted at most ``produces`` tokens for every firing whose
    inputs were all taken (``<port>_no_extra_tokens``; a combinational core may be one firing
    ahead, since it emits a token while taking it).
``progress``
    No token is lost or stuck: once the inputs offer nothing new and the outputs are always
    ready, every token owed for the firings taken comes out, with no gap longer than the
    contract's last write plus its initiation interval (``<port>_drains``).
``timing``
    When the outputs are never stalled (a free constant chooses this), the core keeps its
    contract to the cycle: a beat is taken in the first cycle its tokens are valid and the core
    is out of its cooldown (so no stall reaches an input the contract says is never stalled:
    ``<port>_taken_on_time``), and the outputs are valid exactly ``writes`` cycles after a
    firing's last beat (``<port>_emits_on_time``).
``payload``
    Every output element of the first ``firings`` firings of every channel equals what
    ``core.reference`` gives for the inputs the core took (``<port>_payload``), through
    :class:`~formal.reference.ReferenceTables`.

``protocol`` alone needs no counter, so k-induction can prove it for every state, not only those
a bounded run reaches; the others count tokens and are checked by bounded model checking.
"""

from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Array, Assume, Cat, Const, Elaboratable, Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring

from .proof import check, cover
from .reference import Port, ReferenceTables

__all__ = ["PROPERTIES", "StreamContractSpec", "stream_ports", "channels", "firing_cycles"]

PROPERTIES = ("protocol", "reads", "tokens", "progress", "timing", "payload")


def stream_ports(core, flow):
    """``{name: port}`` of the core's :mod:`amaranth.lib.stream` ports of ``flow``, in signature order."""
    return {name: getattr(core, name) for name, member in core.signature.members.items()
            if member.is_signature and isinstance(member.signature, stream.Signature) and member.flow == flow}


def channels(core):
    """``[(contract, input port names, output port names)]``: a core's independent channels.

    A core with ``contracts`` (one per channel) has its ``k``-th output stream on channel ``k``;
    a core with one ``contract`` has every output on it.
    """
    contracts = tuple(getattr(core, "contracts", None) or (core.contract,))
    outputs = list(stream_ports(core, wiring.Out))
    if len(contracts) == 1:
        return [(contracts[0], list(contracts[0].consumes), outputs)]
    if len(outputs) != len(contracts):
        raise ValueError(f"{type(core).__name__} has {len(contracts)} contracts for {len(outputs)} output streams")
    return [(contract, list(contract.consumes), [output]) for contract, output in zip(contracts, outputs)]


def firing_cycles(core, firings):
    """Cycles from reset until ``firings`` firings of every channel have emitted their last token,
    inputs always valid and outputs always ready: the least depth that covers them."""
    return max(firings * contract.ii - contract.cooldown + contract.writes[-1] + 1
               for contract, _, _ in channels(core))


def _element_shape(port):
    """``(width, signed, lanes)`` of a stream's elements: a lane array's, or the whole payload's."""
    layout = port.payload.shape()
    if isinstance(layout, data.ArrayLayout):
        shape = Shape.cast(layout.elem_shape)
        return shape.width, shape.signed, layout.length
    shape = Shape.cast(layout)
    return shape.width, shape.signed, 1


def _lookup(table, width, bits, index):
    """Entry ``index`` of the ``width``-bit entries packed in ``table``, as a case per entry: the
    solvers handle a multiplexer of constants far better than a shift of one wide constant."""
    mask = (1 << width) - 1
    return Array(Const((table >> (k * width)) & mask, width) for k in range(1 << bits))[index]


def _counter(bound):
    return range(bound + 2)


def _saturating(m, counter, increment, limit):
    with m.If(increment & (counter != limit)):
        m.d.sync += counter.eq(counter + 1)


class StreamContractSpec(Elaboratable):
    """The properties of :data:`PROPERTIES` (see the module's docstring) for ``core``.

    Parameters
    ----------
    core : wiring.Component
        The core; it needs ``contract`` (or ``contracts``) for every property but ``protocol``,
        and ``reference`` for ``payload``.
    bound : int
        The depth it is checked to: counters are sized for it.
    properties : sequence of str
        The subset of :data:`PROPERTIES` to check.
    firings : int
        Firings per channel whose payload is checked.
    max_table_bits : int
        Largest support of a tabulated output element (:class:`~formal.reference.ReferenceTables`).

    Attributes
    ----------
    unchecked : dict of str to str
        Properties asked for but not checked, and why (only ``payload``, for an output element
        that depends on more input bits than a table holds).
    """

    def __init__(self, core, *, bound, properties=PROPERTIES, firings=2, max_table_bits=12):
        unknown = set(properties) - set(PROPERTIES)
        if unknown:
            raise ValueError(f"unknown properties {sorted(unknown)}; choose from {PROPERTIES}")
        self.core = core
        self.bound = bound
        self.properties = tuple(properties)
        self.firings = firings
        # the output protocol needs no contract: any stream component can be proved to keep it
        self.channels = channels(core) if set(self.properties) - {"protocol"} else []
        self.unchecked = {}
        self.tables = None
        if "payload" in self.properties:
            self.tables = self._tables(max_table_bits)
            if self.tables.unchecked:
                self.unchecked["payload"] = self.tables.unchecked

    def _ports(self, flow):
        counts = {}
        for contract, ins, outs in self.channels:
            for name in ins:
                counts[name] = self.firings * contract.consumes[name]
            for name in outs:
                counts[name] = self.firings * contract.produces
        ports = []
        for name, port in stream_ports(self.core, flow).items():
            width, signed, lanes = _element_shape(port)
            ports.append(Port(name, width, signed, lanes, counts[name]))
        return ports

    def _tables(self, max_bits):
        return ReferenceTables(self.core, self._ports(wiring.In), self._ports(wiring.Out), max_bits=max_bits)

    def _wants(self, name):
        return name in self.properties and name not in self.unchecked

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        inputs = stream_ports(core, wiring.In)
        outputs = stream_ports(core, wiring.Out)

        # Anything else the core reads is free.
        for path, member, value in core.signature.flatten(core):
            if path[0] not in inputs and path[0] not in outputs and member.flow == wiring.In:
                m.d.comb += value.eq(AnySeq(len(value)))

        # From `quiet` on, the inputs offer nothing new and the outputs are always ready.
        quiet, quiet_seen = Signal(), Signal()
        m.d.comb += quiet.eq(quiet_seen | AnySeq(1))
        m.d.sync += quiet_seen.eq(quiet)
        # Outputs never stalled: the premise of the timing contract.
        never_stalled = Signal()
        m.d.comb += never_stalled.eq(AnyConst(1))

        taken, held = {}, {}
        for name, port in inputs.items():
            payload = port.payload.as_value()
            m.d.comb += [port.valid.eq(AnySeq(1)), payload.eq(AnySeq(len(payload)))]
            held[name], previous = Signal(name=f"{name}_held"), Signal(len(payload), name=f"{name}_previous")
            m.d.sync += [held[name].eq(port.valid & ~port.ready), previous.eq(payload)]
            m.d.comb += Assume(~held[name] | (port.valid & (payload == previous)))
            m.d.comb += Assume(~quiet | ~port.valid | held[name])
            taken[name] = port.valid & port.ready
        for name, port in outputs.items():
            m.d.comb += port.ready.eq(never_stalled | quiet | AnySeq(1))
            taken[name] = port.valid & port.ready
            if "protocol" in self.properties:
                payload = port.payload.as_value()
                waiting, previous = Signal(name=f"{name}_waiting"), Signal(len(payload), name=f"{name}_shown")
                m.d.sync += [waiting.eq(port.valid & ~port.ready), previous.eq(payload)]
                check(m, f"{name}_holds_until_taken", ~waiting | (port.valid & (payload == previous)))

        if set(self.properties) - {"protocol"}:
            for number, (contract, ins, outs) in enumerate(self.channels):
                self._channel(m, number, contract, ins, outs, inputs, outputs, taken, quiet, never_stalled)
        if self._wants("payload"):
            self._payload(m, inputs, outputs, taken)
        return m

    def _channel(self, m, number, contract, ins, outs, inputs, outputs, taken, quiet, never_stalled):
        """The reads, tokens, progress and timing properties of one channel."""
        runs = contract.reads
        run = Signal(range(len(runs)), name=f"channel{number}_run")
        beat = Signal(range(max(count for _, count in runs)), name=f"channel{number}_beat")
        firings = Signal(_counter(self.bound), name=f"channel{number}_firings")

        in_run = {name: Cat(run == r for r, (ports, _) in enumerate(runs) if name in ports).any() for name in ins}
        step = Cat((run == r) & taken[ports[0]] for r, (ports, _) in enumerate(runs)).any()
        last_beat = Cat((run == r) & (beat == count - 1) for r, (_, count) in enumerate(runs)).any()
        fired = step & last_beat & (run == len(runs) - 1)
        with m.If(step):
            m.d.sync += beat.eq(Mux(last_beat, 0, beat + 1))
            with m.If(last_beat):
                m.d.sync += run.eq(Mux(run == len(runs) - 1, 0, run + 1))
        _saturating(m, firings, fired, self.bound + 1)

        if "reads" in self.properties:
            for name in ins:
                check(m, f"{name}_read_in_order", ~taken[name] | in_run[name])
            for r, (ports, _) in enumerate(runs):
                if len(ports) > 1:
                    together = Cat(taken[p] for p in ports)
                    check(m, f"channel{number}_run{r}_beat_together",
                          (run != r) | (together == 0) | (together == (1 << len(ports)) - 1))

        produces = contract.produces
        ahead = 1 if contract.latency == 0 else 0
        owed_limit = produces * (self.bound + 2)
        drained = []
        for name in outs:
            emitted = Signal(range(owed_limit + 1), name=f"{name}_emitted")
            _saturating(m, emitted, taken[name], owed_limit)
            if "tokens" in self.properties:
                check(m, f"{name}_no_extra_tokens", emitted <= produces * (firings + ahead))
            if "progress" in self.properties:
                gap = contract.writes[-1] + contract.ii + 1
                waited = Signal(range(gap + 2), name=f"{name}_waited")
                owed = emitted < produces * firings
                with m.If(quiet & owed & ~taken[name]):
                    _saturating(m, waited, 1, gap + 1)
                with m.Else():
                    m.d.sync += waited.eq(0)
                check(m, f"{name}_drains", waited <= gap)
            drained.append(emitted == produces * firings)
        cover(m, f"channel{number}_emits_{self.firings}_firings", (firings >= self.firings) & Cat(drained).all())

        if "timing" in self.properties:
            self._timing(m, number, contract, runs, run, ins, outs, inputs, outputs, taken, in_run, fired,
                         never_stalled)

    def _timing(self, m, number, contract, runs, run, ins, outs, inputs, outputs, taken, in_run, fired, never_stalled):
        cooling = Signal(range(contract.cooldown + 1), name=f"channel{number}_cooling")
        with m.If(fired):
            m.d.sync += cooling.eq(contract.cooldown)
        with m.Elif(cooling != 0):
            m.d.sync += cooling.eq(cooling - 1)
        available = Cat((run == r) & Cat(inputs[p].valid for p in ports).all() for r, (ports, _) in enumerate(runs)).any()
        due_take = available & (cooling == 0)
        for name in ins:
            check(m, f"{name}_taken_on_time", ~never_stalled | (taken[name] == (due_take & in_run[name])))

        # pending[k]: a token is due k + 1 cycles from now
        horizon = contract.writes[-1]
        pending = Signal(max(horizon, 1), name=f"channel{number}_pending")
        scheduled = Const(sum(1 << (w - 1) for w in contract.writes if w > 0), len(pending))
        due = pending[0] | (fired & (contract.writes[0] == 0))
        m.d.sync += pending.eq((pending >> 1) | Mux(fired, scheduled, 0))
        check(m, f"channel{number}_writes_one_token_a_cycle", ~fired | (((pending >> 1) & scheduled) == 0))
        for name in outs:
            check(m, f"{name}_emits_on_time", ~never_stalled | (outputs[name].valid == due))

    def _payload(self, m, inputs, outputs, taken):
        """Each output element of the tabulated firings against the reference's table."""
        tables = self.tables
        wanted = {port.name: set() for port in tables.inputs}
        for elements in tables.elements.values():
            for element in elements:
                for name, index in element.support:
                    wanted[name].add(index)
        values = {}
        for port in tables.inputs:
            live = inputs[port.name].payload.as_value()
            count = Signal(range(port.tokens + 1), name=f"{port.name}_taken")
            _saturating(m, count, taken[port.name], port.tokens)
            captured = {}
            for index in sorted(wanted[port.name]):
                token, lane = divmod(index, port.lanes)
                if token not in captured:
                    captured[token] = Signal(len(live), name=f"{port.name}_token{token}")
                    with m.If(taken[port.name] & (count == token)):
                        m.d.sync += captured[token].eq(live)
                # A token not taken yet may be on the port: a combinational core emits it meanwhile.
                word = Mux(count > token, captured[token], live)
                values[port.name, index] = word[lane * port.width:(lane + 1) * port.width]
        for port in tables.outputs:
            payload = outputs[port.name].payload.as_value()
            count = Signal(range(port.tokens + 1), name=f"{port.name}_checked")
            _saturating(m, count, taken[port.name], port.tokens)
            elements = {element.index: element for element in tables.elements[port.name]}
            for token in range(port.tokens):
                expected = []
                for lane in range(port.lanes):
                    element = elements[token * port.lanes + lane]
                    index = Cat(values[key] for key in element.support) if element.support else Const(0, 1)
                    if element.copy:
                        expected.append(index)
                    else:
                        expected.append(_lookup(element.table, port.width, element.bits, index))
                check(m, f"{port.name}_payload{token}",
                      ~(taken[port.name] & (count == token)) | (payload == Cat(*expected)))

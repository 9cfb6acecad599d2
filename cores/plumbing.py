"""Stream plumbing: fork, FIFO, gather (select/concat/reshape/permute/broadcast), lane serializing
and lane conversion.

These cores move tokens without computing on them (apart from the format conversion
:class:`Gather` applies on the way). Each declares a cycle-exact
:class:`~cores.contract.TimingContract`, so the latency solver can place them like any other core.
"""

import functools
import math
import numbers
import operator

import numpy as np

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .contract import ContractTiming, TimingContract
from .fixed import Q, convert, convert_raw
from .model import ModelledComponent, Storage
from .ports import lanes_layout, lanes_signature

__all__ = ["Fork", "StreamFIFO", "FifoCycles", "Gather", "PingPongCycles", "LaneSerializer", "LaneConverter"]


class Fork(wiring.Component):
    """Copy one stream to ``outputs`` streams, each with its own back-pressure.

    An eager fork: every output takes the current token as soon as it is ready and remembers that
    it has; the input token is accepted in the cycle the last output takes it. A slow consumer
    therefore delays the others by at most one token.

    Parameters
    ----------
    fmt : Q
        Element format.
    outputs : int
        Number of output streams (at least 1).
    lanes : int
        Elements per beat.

    Ports
    -----
    i : In(stream.Signature(ArrayLayout(fmt.shape, lanes)))
    o0 .. o{outputs-1} : Out(stream.Signature(ArrayLayout(fmt.shape, lanes)))
        ``valid`` depends on ``i.valid`` and on the output's own taken flag, never on any ready.

    Timing
    ------
    Combinational, no register stage: a token arriving at cycle ``t`` is valid on every output at
    ``t``. ``TimingContract(reads=((("i",), 1),), writes=(0,))``.
    """

    def __init__(self, fmt, outputs, *, lanes=1):
        if outputs < 1:
            raise ValueError(f"a fork needs at least one output, not {outputs}")
        self._outputs = outputs
        members = {"i": In(lanes_signature(fmt, lanes))}
        members.update({f"o{k}": Out(lanes_signature(fmt, lanes)) for k in range(outputs)})
        super().__init__(members)
        self.contract = TimingContract(reads=((("i",), 1),), writes=(0,))

    @property
    def output_ports(self):
        return [getattr(self, f"o{k}") for k in range(self._outputs)]

    multipliers = memories = ()

    def reference(self, i):
        """The raw tokens of every output: the input's, once per output port."""
        return i if self._outputs == 1 else (i,) * self._outputs

    def elaborate(self, platform):
        m = Module()
        outputs = self.output_ports
        taken = Signal(self._outputs)
        m.d.comb += self.i.ready.eq(Cat(taken[k] | port.ready for k, port in enumerate(outputs)).all())
        for k, port in enumerate(outputs):
            m.d.comb += [port.valid.eq(self.i.valid & ~taken[k]), port.payload.eq(self.i.payload)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += taken.eq(0)
        with m.Else():
            m.d.sync += taken.eq(taken | Cat(port.valid & port.ready for port in outputs))
        return m


class StreamFIFOModel:
    """The model of :class:`StreamFIFO`: its timing, the depth a schedule needs, its memory."""

    latency = 2
    """Cycles from a write into an empty FIFO to the beat at its output."""

    min_depth = 3
    """The shallowest FIFO that passes a beat every cycle (see :class:`StreamFIFO`, Timing)."""

    def __init__(self, fmt, depth, *, lanes=1):
        if depth < self.min_depth:
            raise ValueError(f"StreamFIFO needs a depth of at least {self.min_depth} to pass a beat every cycle, "
                             f"not {depth}")
        self._width = fmt.width * lanes
        self._depth = depth
        self.contract = TimingContract.pipeline(("i",), self.latency)

    @property
    def depth(self):
        return self._depth

    multipliers = ()

    @property
    def memories(self):
        """The memory of ``depth - 1`` entries (the output register is not a memory)."""
        return (Storage(self._width, self._depth - 1, False),)

    def reference(self, i):
        """The raw tokens out: the tokens in."""
        return i

    def cycle_model(self, firings=None):
        """The FIFO register by register (:class:`FifoCycles`); it runs for as long as it is fed."""
        return FifoCycles(self.memories[0].depth)

    @classmethod
    def depth_for(cls, writes, reads):
        """The shallowest FIFO that accepts every write on time: ``writes[k]`` is the cycle token
        ``k`` is written, ``reads[k]`` the cycle it is read.

        The FIFO moves a token from its memory to its output register at
        ``max(writes[k] + 1, reads[k - 1])``; a write is accepted while fewer than ``depth - 1``
        tokens sit in the memory. At least :attr:`min_depth`.
        """
        writes = np.asarray(writes, dtype=np.int64)
        reads = np.asarray(reads, dtype=np.int64)
        if len(writes) == 0:
            return cls.min_depth
        previous_read = np.concatenate([[np.iinfo(np.int64).min // 4], reads[:-1]])
        moved = np.maximum(writes + 1, previous_read)
        in_memory = np.arange(len(writes)) - np.searchsorted(moved, writes, side="left")
        return max(cls.min_depth, int(in_memory.max()) + 2)  # room for one more in a memory of depth - 1


class StreamFIFO(ModelledComponent, StreamFIFOModel):
    """A first-in first-out queue between two streams, on :class:`amaranth.lib.fifo.SyncFIFOBuffered`.

    Parameters
    ----------
    fmt : Q
        Element format.
    depth : int
        Capacity in beats, at least 3 (below that ``SyncFIFOBuffered`` cannot take a beat every
        cycle, see Timing).
    lanes : int
        Elements per beat.

    Ports
    -----
    i : In(stream.Signature(ArrayLayout(fmt.shape, lanes)))
    o : Out(stream.Signature(ArrayLayout(fmt.shape, lanes)))
    level : Out(range(depth + 1))
        Beats held, the output register included.

    Timing
    ------
    ``SyncFIFOBuffered(depth)`` is a memory of ``depth - 1`` entries followed by an output register
    (``o.payload`` and ``o.valid`` are registers). A beat written at cycle ``t`` into an empty FIFO
    is in the memory at ``t + 1``, which reads it into the output register, valid at ``t + 2``.
    While the output register is taken every cycle the next beat follows it at once, so with an
    always-ready consumer the FIFO holds at most 2 beats and is a pipeline of latency 2 and
    initiation interval 1: ``TimingContract.pipeline(("i",), 2)``. ``i.ready`` is low exactly
    when the memory holds ``depth - 1`` beats; it does not look at a read in the same cycle, so a
    full FIFO accepts again one cycle after the read that frees a place. With depth 2 or 1 the
    memory (depth 1 or 0) fills after one write, halving the throughput, hence ``depth >= 3``.
    :meth:`depth_for` gives the depth a schedule of writes and reads needs, :class:`FifoCycles`
    the FIFO under any schedule.
    """

    def __init__(self, fmt, depth, *, lanes=1):
        # The ports need the element format, which the model does not keep (only the width it stores).
        StreamFIFOModel.__init__(self, fmt, depth, lanes=lanes)
        wiring.Component.__init__(self, {"i": In(lanes_signature(fmt, lanes)), "o": Out(lanes_signature(fmt, lanes)),
                                         "level": Out(range(depth + 1))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=self._width, depth=self._depth)
        m.d.comb += [
            fifo.w_data.eq(self.i.payload),
            fifo.w_en.eq(self.i.valid),
            self.i.ready.eq(fifo.w_rdy),
            self.o.payload.eq(fifo.r_data),
            self.o.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.o.ready),
            self.level.eq(fifo.level),
        ]
        return m


class FifoCycles:
    """:class:`StreamFIFO`'s :class:`~cores.contract.CycleModel`: ``SyncFIFOBuffered``, a memory of
    ``capacity`` entries and an output register. ``w_rdy`` is its input's ready, ``level`` the
    beats it holds."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.held = 0
        self.out_valid = False

    @property
    def w_rdy(self):
        return self.held != self.capacity

    @property
    def level(self):
        return self.held + self.out_valid

    def ready(self, valid, out_ready):
        return ("i",) if valid["i"] and self.w_rdy else ()

    def clock(self, taken, out_ready):
        move = self.held != 0 and (not self.out_valid or out_ready)
        self.held += int(bool(taken)) - int(move)
        if move:
            self.out_valid = True
        elif out_ready:
            self.out_valid = False


class GatherModel:
    """The model of :class:`Gather`."""

    latency = 2

    def __init__(self, inputs, out_format, index, *, lanes=1, rounding="nearest", overflow="saturate"):
        self._inputs = [(Q.parse(fmt), int(count)) for fmt, count in inputs]
        if not self._inputs:
            raise ValueError("Gather needs at least one input port")
        if any(count < 1 for _, count in self._inputs):
            raise ValueError(f"every input port must carry at least one token per firing: {inputs}")
        if len(index) < 1:
            raise ValueError("Gather must emit at least one token per firing")
        self._out_format = out_format
        self._lanes = lanes
        self._rounding = rounding
        self._overflow_mode = overflow
        self.index = tuple(index)

        self._offsets = []
        total = 0
        for _, count in self._inputs:
            self._offsets.append(total)
            total += count
        self._tokens_in = total

        constants = {}  # (raw, overflowed) -> local address after the input tokens
        rom = []
        for slot, entry in enumerate(self.index):
            if isinstance(entry, numbers.Real):
                key = self._quantize_constant(float(entry))
                rom.append(constants.setdefault(key, total + len(constants)))
                continue
            port, element = entry
            if not 0 <= port < len(self._inputs) or not 0 <= element < self._inputs[port][1]:
                raise ValueError(f"index[{slot}] = {entry!r} names no element of inputs {inputs}")
            rom.append(self._offsets[port] + element)
        self._constants = constants
        self._rom = rom
        self._local_bits = max(1, math.ceil(math.log2(total + len(constants))))
        self.contract = TimingContract(
            reads=tuple(((f"i{port}",), count) for port, (_, count) in enumerate(self._inputs)),
            writes=tuple(range(self.latency, self.latency + len(rom))),
            cooldown=self.cooldown)

    @property
    def tokens_in(self):
        """Input tokens per firing, over all ports (``N``)."""
        return self._tokens_in

    @property
    def tokens_out(self):
        """Output tokens per firing (``M``)."""
        return len(self._rom)

    @property
    def cooldown(self):
        return max(0, self.tokens_out - self.tokens_in)

    def cycle_model(self, firings=None):
        """The gather register by register (:class:`PingPongCycles`); it runs for as long as it is fed."""
        return PingPongCycles(self.contract)

    @property
    def buffer_bits(self):
        """Bits of the ping-pong buffer: two halves of ``2**ceil(log2(N + constants))`` entries,
        each ``lanes`` values of ``out_format`` and one overflow bit. The index ROM is a constant,
        not counted."""
        return 2 * (1 << self._local_bits) * self._entry_bits

    @property
    def out_format(self):
        return self._out_format

    @property
    def multipliers(self):
        return ()

    @property
    def memories(self):
        """The ping-pong buffer and the index ROM."""
        return (Storage(self._entry_bits, 2 * (1 << self._local_bits), True),
                Storage(self._local_bits, self.tokens_out, True))

    @property
    def _entry_bits(self):
        return self._lanes * self._out_format.width + 1

    def reference(self, *raw_inputs):
        """Bit-exact model: raw outputs ``[..., f * M * lanes]`` for raw inputs
        ``raw_inputs[port][..., f * Ni * lanes]`` (``f`` firings), beat-major, lane-minor."""
        batch = np.shape(raw_inputs[0])[:-1]
        firings = np.shape(raw_inputs[0])[-1] // (self._inputs[0][1] * self._lanes)
        converted = [convert_raw(np.reshape(raw, batch + (firings, count, self._lanes)), fmt, self._out_format,
                                 rounding=self._rounding, overflow=self._overflow_mode)[0]
                     for raw, (fmt, count) in zip(raw_inputs, self._inputs)]
        constants = [np.full(batch + (firings, 1, self._lanes), raw, dtype=converted[0].dtype)
                     for (raw, _), _ in sorted(self._constants.items(), key=lambda item: item[1])]
        pool = np.concatenate(converted + constants, axis=-2)
        return pool[..., self._rom, :].reshape(batch + (-1,))

    def _quantize_constant(self, value):
        # Quantize with ample integer bits first, so that the overflow flag can be computed exactly.
        wide = Q(self._out_format.int_bits + 64, self._out_format.frac_bits)
        raw = wide.quantize([value], rounding=self._rounding)
        fitted, overflowed = convert_raw(raw, wide, self._out_format, overflow=self._overflow_mode)
        return int(fitted[0]), bool(overflowed[0])


class Gather(ModelledComponent, GatherModel):
    """Build each output firing from chosen elements of the input firings, and constants.

    The one adapter for select, slice, concatenate, reshape, permute (transpose), repeat and
    broadcast: output token ``j`` of a firing is ``index[j]``, either ``(port, element)`` (element
    ``element`` of this firing's tokens on input ``i{port}``, converted to ``out_format``) or a
    real constant. Elements may be used any number of times, or not at all. With several lanes
    (independent samples), every lane gathers by the same index, and a constant is the same in
    every lane.

    Parameters
    ----------
    inputs : sequence of (Q, int)
        Format and tokens per firing of each input port ``i0, i1, ...`` (at least one).
    out_format : Q
        Format of the output stream ``o``.
    index : sequence of (int, int) or float
        The ``M`` output tokens of a firing (at least one).
    lanes : int
        Elements per beat, on every port.
    rounding, overflow : str
        How inputs and constants are brought to ``out_format`` (see :func:`cores.fixed.convert`).

    Ports
    -----
    i0, i1, ... : In(stream.Signature(ArrayLayout(fmt.shape, lanes)))
    o : Out(stream.Signature(ArrayLayout(out_format.shape, lanes)))
    overflow : Out(1)
        Sticky: set once an element of an emitted token (input or constant) did not fit
        ``out_format``, in any lane.

    Structure
    ---------
    A firing reads all ``N0`` tokens of ``i0``, then all ``N1`` of ``i1``, and so on (this order is
    part of the contract), converts each to ``out_format`` on the way in and writes it, its
    ``lanes`` values with one overflow bit (set when any lane overflowed, all the sticky flag
    needs), into one half of a ping-pong buffer (one :class:`~amaranth.lib.memory.Memory`,
    simple dual port). Each half holds the ``N = sum(Ni)`` tokens at local addresses ``0..N-1``
    and the distinct constants after them, and is padded to a power of two so that an address is
    just ``{half, local}``. Once a half is full, a read-side counter walks an index ROM (a second
    memory with a registered read, so large ROMs can be block RAM) and reads one token per cycle
    into the output register, which is the buffer's own read register. The next firing loads into
    the other half meanwhile; the input side never writes a half whose reads are not all issued.

    Timing
    ------
    With the last input token accepted at ``t``: its half is marked full at ``t + 1``, when the
    read of output token 0 is issued, so token ``j`` is valid at ``t + 2 + j``. Latency 2, one
    token per cycle. ``cooldown = max(0, M - N)``: a firing of ``N`` input beats may start only
    ``max(N, M)`` cycles after the previous one, so that its outputs (``N + cooldown`` cycles
    later) start just after the previous firing's last one. The input side enforces exactly that
    cooldown with a counter. The ping-pong half that firing ``f + 1`` overwrites is then always
    free in time: firing ``f - 1`` issued its last read at ``t(f-1) + M`` and firing ``f + 1``
    writes no earlier than ``t(f-1) + N + 2 * cooldown + 1 >= t(f-1) + M + 1``.
    ``reads=((("i0",), N0), (("i1",), N1), ...)``, ``writes=(2, 3, ..., M + 1)``.
    """

    def members(self):
        members = {f"i{port}": In(lanes_signature(fmt, self._lanes)) for port, (fmt, _) in enumerate(self._inputs)}
        members["o"] = Out(lanes_signature(self._out_format, self._lanes))
        members["overflow"] = Out(1)
        return members

    def elaborate(self, platform):
        m = Module()
        out = self._out_format
        tokens_out = len(self._rom)
        half_depth = 1 << self._local_bits

        # The lanes' values as one word, lane 0 in the low bits, like the payloads.
        entry = data.StructLayout({"value": unsigned(self._lanes * out.width), "overflow": 1})
        init = [None] * (2 * half_depth)
        for (raw, overflowed), local in self._constants.items():
            in_every_lane = sum((raw % (1 << out.width)) << (lane * out.width) for lane in range(self._lanes))
            init[local] = init[half_depth + local] = {"value": in_every_lane, "overflow": int(overflowed)}
        m.submodules.buffer = memory = Memory(shape=entry, depth=2 * half_depth, init=init)
        m.submodules.index_rom = index_rom = Memory(shape=unsigned(self._local_bits), depth=tokens_out,
                                                    init=self._rom)
        buffer = _PingPong(memory, self.o, self._local_bits, self._tokens_in, self.cooldown)
        rom_read = index_rom.read_port(domain="sync")

        # Input side: one token per cycle, ports in order.
        for port_number, (fmt, count) in enumerate(self._inputs):
            port = getattr(self, f"i{port_number}")
            start = self._offsets[port_number]
            active = (buffer.write_local >= start) & (buffer.write_local < start + count)
            values, overflows = zip(*(convert(port.payload[lane], fmt, out, rounding=self._rounding,
                                              overflow=self._overflow_mode) for lane in range(self._lanes)))
            m.d.comb += port.ready.eq(buffer.can_write & active)
            with m.If(active):
                m.d.comb += [
                    buffer.write.data.value.eq(Cat(values)),
                    buffer.write.data.overflow.eq(functools.reduce(operator.or_, overflows)),
                    buffer.write_en.eq(port.valid & buffer.can_write),
                ]
        buffer.count_writes(m)

        # Output side: a slot counter walks the index ROM.
        slot = Signal(range(tokens_out))
        last_slot = slot == tokens_out - 1
        next_slot = Mux(last_slot, 0, slot + 1)
        # The ROM is addressed with the slot of the next cycle, so its registered output is the
        # current slot's entry.
        m.d.comb += [
            rom_read.addr.eq(Mux(buffer.issue, next_slot, slot)),
            self.o.payload.eq(buffer.read.data.value),
        ]
        with m.If(buffer.issue):
            m.d.sync += slot.eq(next_slot)
        buffer.issue_reads(m, rom_read.data, last_slot)
        with m.If(self.o.valid & self.o.ready & buffer.read.data.overflow):
            m.d.sync += self.overflow.eq(1)
        buffer.track_halves(m)
        return m


class _PingPong:
    """The two halves of a ping-pong buffer in one memory, and the control they share.

    The input side writes a firing's ``beats`` entries into one half, at local addresses
    ``0 .. beats - 1``, while the output side reads the other half into the memory's read
    register, which is the output register of ``output``. A half is full from its last write until
    its last read is issued; the input side waits for its half to be free, and for ``cooldown``
    cycles after the last entry of the previous firing.

    The owner puts the entry on ``write.data``, drives ``write_en`` with ``can_write`` and calls
    :meth:`count_writes`; it chooses the local address of each read and calls
    :meth:`issue_reads`, and :meth:`track_halves` after both. A read is issued in each cycle of
    ``issue``.
    """

    def __init__(self, memory, output, local_bits, beats, cooldown):
        self.write = memory.write_port()
        self.read = memory.read_port(domain="sync")
        self._output, self._beats, self._cooldown = output, beats, cooldown
        self.full = Signal(2)  # per half: written completely, not yet read completely
        self.write_local = Signal(local_bits)
        self.write_half = Signal()
        self.can_write = ~self.full.bit_select(self.write_half, 1)
        if cooldown:
            self.cooldown_left = Signal(range(cooldown + 1))
            self.can_write &= self.cooldown_left == 0
        self.write_en = Signal()
        self.read_half = Signal()
        self.advance = ~output.valid | output.ready
        self.issue = self.full.bit_select(self.read_half, 1) & self.advance

    def count_writes(self, m):
        """Write an entry in each cycle of ``write_en``, to the next local address of the half."""
        self.last_write = self.write_en & (self.write_local == self._beats - 1)
        m.d.comb += [self.write.addr.eq(Cat(self.write_local, self.write_half)), self.write.en.eq(self.write_en)]
        with m.If(self.write_en):
            m.d.sync += self.write_local.eq(Mux(self.last_write, 0, self.write_local + 1))
        with m.If(self.last_write):
            m.d.sync += self.write_half.eq(~self.write_half)
        if self._cooldown:
            with m.If(self.last_write):
                m.d.sync += self.cooldown_left.eq(self._cooldown)
            with m.Elif(self.cooldown_left != 0):
                m.d.sync += self.cooldown_left.eq(self.cooldown_left - 1)

    def issue_reads(self, m, local, last):
        """Read ``local`` of the full half in each cycle of ``issue``; ``last`` marks its last read."""
        self.last_read = self.issue & last
        m.d.comb += [self.read.addr.eq(Cat(local, self.read_half)), self.read.en.eq(self.issue)]
        with m.If(self.last_read):
            m.d.sync += self.read_half.eq(~self.read_half)
        with m.If(self.advance):
            m.d.sync += self._output.valid.eq(self.issue)

    def track_halves(self, m):
        """Mark a half full at its last write and free at its last read."""
        for half in range(2):
            with m.If(self.last_write & (self.write_half == half)):
                m.d.sync += self.full[half].eq(1)
            with m.Elif(self.last_read & (self.read_half == half)):
                m.d.sync += self.full[half].eq(0)


class PingPongCycles:
    """The :class:`~cores.contract.CycleModel` of a core built on :class:`_PingPong` (:class:`Gather`,
    :class:`LaneSerializer`), register by register, from its ``contract``: a firing writes the beats
    of its reads into one half, port after port, and the output side reads the ``M`` outputs of the
    other half. Unlike a pipeline, the input side goes on while the output is stalled."""

    def __init__(self, contract):
        self.ports = [port for (port,), count in contract.reads for _ in range(count)]
        self.outputs = contract.produces
        self.cooldown = contract.cooldown
        self.full = [False, False]
        self.write_local = self.write_half = self.cooldown_left = 0
        self.read_half = self.slot = 0
        self.out_valid = False

    def ready(self, valid, out_ready):
        port = self.ports[self.write_local]
        can_write = not self.full[self.write_half] and self.cooldown_left == 0
        return (port,) if valid[port] and can_write else ()

    def clock(self, taken, out_ready):
        advance = not self.out_valid or out_ready
        issue = self.full[self.read_half] and advance
        last_write = bool(taken) and self.write_local == len(self.ports) - 1
        last_read = issue and self.slot == self.outputs - 1
        for half in (0, 1):
            if last_write and self.write_half == half:
                self.full[half] = True
            elif last_read and self.read_half == half:
                self.full[half] = False
        if taken:
            self.write_local = 0 if last_write else self.write_local + 1
        if last_write:
            self.write_half, self.cooldown_left = 1 - self.write_half, self.cooldown
        elif self.cooldown_left:
            self.cooldown_left -= 1
        if issue:
            self.slot = 0 if last_read else self.slot + 1
        if last_read:
            self.read_half = 1 - self.read_half
        if advance:
            self.out_valid = issue


class LaneSerializerModel:
    """The model of :class:`LaneSerializer`."""

    latency = 2

    def __init__(self, fmt, tokens, lanes):
        if lanes < 2:
            raise ValueError(f"a LaneSerializer of {lanes} lane would be a wire: it needs at least 2 lanes")
        if tokens < 1:
            raise ValueError(f"a firing carries at least one beat, not {tokens}")
        self._fmt, self._tokens, self._lanes = fmt, tokens, lanes
        self._local_bits = (tokens - 1).bit_length()
        elements = lanes * tokens
        self.contract = TimingContract(reads=((("i",), tokens),),
                                       writes=tuple(range(self.latency, self.latency + elements)),
                                       cooldown=self.cycles_per_firing(tokens, lanes) - tokens)

    @staticmethod
    def cycles_per_firing(tokens, lanes):
        """Cycles a firing takes, the initiation interval: one per element sent."""
        return lanes * tokens

    def cycle_model(self, firings=None):
        """The serializer register by register (:class:`PingPongCycles`); it runs for as long as it is fed."""
        return PingPongCycles(self.contract)

    multipliers = ()

    @property
    def memories(self):
        """The ping-pong buffer."""
        return (Storage(self._lanes * self._fmt.width, 2 << self._local_bits, False),)

    @property
    def buffer_bits(self):
        """Bits of the ping-pong buffer: two halves of ``2**ceil(log2(tokens))`` words of ``lanes`` elements."""
        return (2 << self._local_bits) * self._lanes * self._fmt.width

    def reference(self, i):
        """The raw elements out for the raw beats in: ``i[..., f * tokens * lanes]`` beat-major,
        lane-minor (``f`` firings) to ``[..., f * lanes * tokens]`` sample-major."""
        beats = np.reshape(i, np.shape(i)[:-1] + (-1, self._tokens, self._lanes))
        return np.swapaxes(beats, -1, -2).reshape(np.shape(i))


class LaneSerializer(ModelledComponent, LaneSerializerModel):
    """Send the ``lanes`` samples of a lane stream out one after the other, one element per beat.

    The inverse of the :class:`~cores.pacer.Pacer`'s interleaving, at the outputs of a design whose
    lanes carry samples: a firing takes ``tokens`` beats, beat ``j`` holding element ``j`` of
    ``lanes`` samples, and emits its ``M = lanes * tokens`` elements sample-major, all ``tokens`` of
    lane 0, then those of lane 1, and so on. A 1-lane stream is already in that order, so ``lanes``
    must be at least 2.

    Parameters
    ----------
    fmt : Q
        Element format.
    tokens : int
        Beats per firing: the elements of one sample.
    lanes : int
        Lanes of ``i``, the samples of a firing (at least 2).

    Ports
    -----
    i : In(stream.Signature(ArrayLayout(fmt.shape, lanes)))
    o : Out(stream.Signature(ArrayLayout(fmt.shape, 1)))

    Structure
    ---------
    A ping-pong buffer in one :class:`~amaranth.lib.memory.Memory` of ``lanes``-element words, like
    :class:`Gather`'s: each input beat is one word of a half (padded to a power of two), and once
    the half is full the read side walks it lane by lane, word by word, reading one word per cycle
    into the buffer's read register; a register of the word's lane picks the element out of it.
    The next firing loads into the other half meanwhile.

    Timing
    ------
    As :class:`Gather`'s with ``N = tokens`` input beats and ``M = lanes * tokens`` outputs: latency
    2, one element per cycle, and ``cooldown = M - N``, so that firings follow each other at one
    element per cycle at the output. ``TimingContract(reads=((("i",), tokens),),
    writes=(2, 3, ..., M + 1), cooldown=(lanes - 1) * tokens)``.
    """

    def members(self):
        return {"i": In(lanes_signature(self._fmt, self._lanes)), "o": Out(lanes_signature(self._fmt, 1))}

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = memory = Memory(shape=lanes_layout(self._fmt, self._lanes),
                                              depth=2 << self._local_bits, init=[])
        buffer = _PingPong(memory, self.o, self._local_bits, self._tokens, self.contract.cooldown)
        m.d.comb += [
            buffer.write.data.eq(self.i.payload),
            buffer.write_en.eq(self.i.valid & buffer.can_write),
            self.i.ready.eq(buffer.can_write),
        ]
        buffer.count_writes(m)

        element = Signal(range(self._tokens))
        lane = Signal(range(self._lanes))
        read_lane = Signal(range(self._lanes))  # the lane to send of the word in the read register
        last_element = element == self._tokens - 1
        with m.If(buffer.issue):
            m.d.sync += [element.eq(Mux(last_element, 0, element + 1)), read_lane.eq(lane)]
            with m.If(last_element):
                m.d.sync += lane.eq(Mux(lane == self._lanes - 1, 0, lane + 1))
        buffer.issue_reads(m, element, last_element & (lane == self._lanes - 1))
        m.d.comb += self.o.payload[0].eq(buffer.read.data[read_lane])
        buffer.track_halves(m)
        return m


class LaneConverter(ContractTiming, wiring.Component):
    """Change the number of lanes of a stream, when one lane count divides the other.

    Widening (``out_lanes = k * in_lanes``) collects ``k`` input beats into one output beat, the
    first beat in the low lanes. Narrowing (``in_lanes = k * out_lanes``) sends each input beat out
    as ``k`` beats, low lanes first. Element order is unchanged either way.

    Parameters
    ----------
    fmt : Q
        Element format.
    in_lanes, out_lanes : int
        Lanes of ``i`` and ``o``; one must divide the other (equal counts give a register stage).

    Ports
    -----
    i : In(stream.Signature(ArrayLayout(fmt.shape, in_lanes)))
    o : Out(stream.Signature(ArrayLayout(fmt.shape, out_lanes)))

    Timing
    ------
    Widening: ``reads=((("i",), k),)``, ``writes=(1,)``; the first ``k - 1`` beats of a group go to
    holding registers that are free while the output is stalled, so only the last beat waits for
    the output register. Narrowing: ``reads=((("i",), 1),)``, ``writes=(1, 2, ..., k)``,
    ``cooldown=k - 1``; the next beat is accepted in the cycle the last piece of the previous one
    leaves the output register, so one beat every ``k`` cycles.
    """

    def __init__(self, fmt, in_lanes, out_lanes):
        if in_lanes < 1 or out_lanes < 1 or (in_lanes % out_lanes and out_lanes % in_lanes):
            raise ValueError(f"LaneConverter needs one lane count to divide the other, not {in_lanes} -> {out_lanes}")
        self._fmt = fmt
        self._in_lanes = in_lanes
        self._out_lanes = out_lanes
        super().__init__({"i": In(lanes_signature(fmt, in_lanes)), "o": Out(lanes_signature(fmt, out_lanes))})
        if out_lanes >= in_lanes:
            self.contract = TimingContract(reads=((("i",), out_lanes // in_lanes),), writes=(1,))
        else:
            pieces = in_lanes // out_lanes
            self.contract = TimingContract(reads=((("i",), 1),), writes=tuple(range(1, pieces + 1)),
                                           cooldown=pieces - 1)

    multipliers = memories = ()

    def reference(self, i):
        """The raw elements out: the elements in, in the same order."""
        return i

    def elaborate(self, platform):
        m = Module()
        advance = ~self.o.valid | self.o.ready
        if self._out_lanes >= self._in_lanes:
            self._widen(m, advance)
        else:
            self._narrow(m, advance)
        return m

    def _widen(self, m, advance):
        beats = self._out_lanes // self._in_lanes
        count = Signal(range(beats))
        held = [Signal(lanes_layout(self._fmt, self._in_lanes), name=f"held{beat}") for beat in range(beats - 1)]
        last = count == beats - 1
        m.d.comb += self.i.ready.eq(~last | advance)
        take = self.i.valid & self.i.ready
        with m.If(take):
            m.d.sync += count.eq(Mux(last, 0, count + 1))
        for beat, register in enumerate(held):
            with m.If(take & (count == beat)):
                m.d.sync += register.eq(self.i.payload)
        with m.If(advance):
            m.d.sync += self.o.valid.eq(take & last)
        with m.If(take & last):
            m.d.sync += self.o.payload.eq(Cat(*held, self.i.payload))

    def _narrow(self, m, advance):
        pieces = self._in_lanes // self._out_lanes
        piece_bits = self._out_lanes * self._fmt.width
        rest = Signal((pieces - 1) * piece_bits)
        remaining = Signal(range(pieces))
        m.d.comb += self.i.ready.eq(advance & (remaining == 0))
        incoming = self.i.payload.as_value()
        with m.If(advance):
            with m.If(remaining != 0):
                m.d.sync += [
                    self.o.payload.eq(rest[:piece_bits]),
                    rest.eq(rest[piece_bits:]),
                    remaining.eq(remaining - 1),
                    self.o.valid.eq(1),
                ]
            with m.Elif(self.i.valid):
                m.d.sync += [
                    self.o.payload.eq(incoming[:piece_bits]),
                    rest.eq(incoming[piece_bits:]),
                    remaining.eq(pieces - 1),
                    self.o.valid.eq(1),
                ]
            with m.Else():
                m.d.sync += self.o.valid.eq(0)

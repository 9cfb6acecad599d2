"""Stream plumbing: fork, FIFO, gather (select/concat/reshape/permute/broadcast), lane conversion.

These cores move tokens without computing on them (apart from the format conversion
:class:`Gather` applies on the way). Each declares a cycle-exact
:class:`~cores.contract.TimingContract`, so the latency solver can place them like any other core.
"""

import math
import numbers

import numpy as np

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .contract import TimingContract
from .fixed import Q, convert, convert_raw
from .model import ModelledComponent, Storage
from .ports import lanes_layout, lanes_signature

__all__ = ["Fork", "StreamFIFO", "Gather", "LaneConverter"]


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


class StreamFIFO(wiring.Component):
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
    """

    latency = 2

    def __init__(self, fmt, depth, *, lanes=1):
        if depth < 3:
            raise ValueError(f"StreamFIFO needs a depth of at least 3 to pass a beat every cycle, not {depth}")
        self._width = fmt.width * lanes
        self._depth = depth
        super().__init__({
            "i": In(lanes_signature(fmt, lanes)),
            "o": Out(lanes_signature(fmt, lanes)),
            "level": Out(range(depth + 1)),
        })
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


class GatherModel:
    """The model of :class:`Gather`."""

    latency = 2

    def __init__(self, inputs, out_format, index, *, rounding="nearest", overflow="saturate"):
        self._inputs = [(Q.parse(fmt), int(count)) for fmt, count in inputs]
        if not self._inputs:
            raise ValueError("Gather needs at least one input port")
        if any(count < 1 for _, count in self._inputs):
            raise ValueError(f"every input port must carry at least one token per firing: {inputs}")
        if len(index) < 1:
            raise ValueError("Gather must emit at least one token per firing")
        self._out_format = out_format
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

    @property
    def buffer_bits(self):
        """Bits of the ping-pong buffer: two halves of ``2**ceil(log2(N + constants))`` entries,
        each an ``out_format`` value and its overflow bit. The index ROM is a constant, not counted."""
        return 2 * (1 << self._local_bits) * (self._out_format.width + 1)

    @property
    def out_format(self):
        return self._out_format

    @property
    def multipliers(self):
        return ()

    @property
    def memories(self):
        """The ping-pong buffer and the index ROM."""
        return (Storage(self._out_format.width + 1, 2 * (1 << self._local_bits), True),
                Storage(self._local_bits, self.tokens_out, True))

    def reference(self, *raw_inputs):
        """Bit-exact model: raw outputs ``[..., f * M]`` for raw inputs ``raw_inputs[port][..., f * Ni]``
        (``f`` firings)."""
        batch = np.shape(raw_inputs[0])[:-1]
        firings = np.shape(raw_inputs[0])[-1] // self._inputs[0][1]
        converted = [convert_raw(np.reshape(raw, batch + (firings, count)), fmt, self._out_format,
                                 rounding=self._rounding, overflow=self._overflow_mode)[0]
                     for raw, (fmt, count) in zip(raw_inputs, self._inputs)]
        constants = [np.full(batch + (firings, 1), raw, dtype=converted[0].dtype)
                     for (raw, _), _ in sorted(self._constants.items(), key=lambda item: item[1])]
        pool = np.concatenate(converted + constants, axis=-1)
        return pool[..., self._rom].reshape(batch + (-1,))

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
    real constant. Elements may be used any number of times, or not at all.

    Parameters
    ----------
    inputs : sequence of (Q, int)
        Format and tokens per firing of each input port ``i0, i1, ...`` (at least one).
    out_format : Q
        Format of the output stream ``o``.
    index : sequence of (int, int) or float
        The ``M`` output tokens of a firing (at least one).
    rounding, overflow : str
        How inputs and constants are brought to ``out_format`` (see :func:`cores.fixed.convert`).

    Ports
    -----
    i0, i1, ... : In(stream.Signature(ArrayLayout(fmt.shape, 1)))
    o : Out(stream.Signature(ArrayLayout(out_format.shape, 1)))
    overflow : Out(1)
        Sticky: set once an emitted token (input or constant) did not fit ``out_format``.

    Structure
    ---------
    A firing reads all ``N0`` tokens of ``i0``, then all ``N1`` of ``i1``, and so on (this order is
    part of the contract), converts each to ``out_format`` on the way in and writes it, with its
    overflow bit, into one half of a ping-pong buffer (one :class:`~amaranth.lib.memory.Memory`,
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
        members = {f"i{port}": In(lanes_signature(fmt, 1)) for port, (fmt, _) in enumerate(self._inputs)}
        members["o"] = Out(lanes_signature(self._out_format, 1))
        members["overflow"] = Out(1)
        return members

    def elaborate(self, platform):
        m = Module()
        out = self._out_format
        tokens_in, tokens_out = self._tokens_in, len(self._rom)
        half_depth = 1 << self._local_bits

        entry = data.StructLayout({"value": out.shape, "overflow": 1})
        init = [None] * (2 * half_depth)
        for (raw, overflowed), local in self._constants.items():
            init[local] = init[half_depth + local] = {"value": raw, "overflow": int(overflowed)}
        m.submodules.buffer = buffer = Memory(shape=entry, depth=2 * half_depth, init=init)
        m.submodules.index_rom = index_rom = Memory(shape=unsigned(self._local_bits), depth=tokens_out,
                                                    init=self._rom)
        write = buffer.write_port()
        read = buffer.read_port(domain="sync")
        rom_read = index_rom.read_port(domain="sync")

        full = Signal(2)  # per half: written completely, not yet read completely

        # Input side: one token per cycle, ports in order, into half `write_half`.
        write_local = Signal(self._local_bits)
        write_half = Signal()
        can_write = ~full.bit_select(write_half, 1)
        if self.cooldown:
            cooldown_left = Signal(range(self.cooldown + 1))
            can_write &= cooldown_left == 0
        write_en = Signal()
        for port_number, (fmt, count) in enumerate(self._inputs):
            port = getattr(self, f"i{port_number}")
            start = self._offsets[port_number]
            active = (write_local >= start) & (write_local < start + count)
            value, overflowed = convert(port.payload[0], fmt, out,
                                        rounding=self._rounding, overflow=self._overflow_mode)
            m.d.comb += port.ready.eq(can_write & active)
            with m.If(active):
                m.d.comb += [
                    write.data.value.eq(value),
                    write.data.overflow.eq(overflowed),
                    write_en.eq(port.valid & can_write),
                ]
        last_write = write_en & (write_local == tokens_in - 1)
        m.d.comb += [write.addr.eq(Cat(write_local, write_half)), write.en.eq(write_en)]
        with m.If(write_en):
            m.d.sync += write_local.eq(Mux(last_write, 0, write_local + 1))
        with m.If(last_write):
            m.d.sync += write_half.eq(~write_half)
        if self.cooldown:
            with m.If(last_write):
                m.d.sync += cooldown_left.eq(self.cooldown)
            with m.Elif(cooldown_left != 0):
                m.d.sync += cooldown_left.eq(cooldown_left - 1)

        # Output side: the buffer's read register is the output register.
        slot = Signal(range(tokens_out))
        read_half = Signal()
        advance = ~self.o.valid | self.o.ready
        issue = full.bit_select(read_half, 1) & advance
        last_read = issue & (slot == tokens_out - 1)
        next_slot = Mux(slot == tokens_out - 1, 0, slot + 1)
        # The ROM is addressed with the slot of the next cycle, so its registered output is the
        # current slot's entry.
        m.d.comb += [
            rom_read.addr.eq(Mux(issue, next_slot, slot)),
            read.addr.eq(Cat(rom_read.data, read_half)),
            read.en.eq(issue),
            self.o.payload[0].eq(read.data.value),
        ]
        with m.If(issue):
            m.d.sync += slot.eq(next_slot)
        with m.If(last_read):
            m.d.sync += read_half.eq(~read_half)
        with m.If(advance):
            m.d.sync += self.o.valid.eq(issue)
        with m.If(self.o.valid & self.o.ready & read.data.overflow):
            m.d.sync += self.overflow.eq(1)

        for half in range(2):
            with m.If(last_write & (write_half == half)):
                m.d.sync += full[half].eq(1)
            with m.Elif(last_read & (read_half == half)):
                m.d.sync += full[half].eq(0)
        return m


class LaneConverter(wiring.Component):
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

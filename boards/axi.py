"""AXI building blocks of the Vitis kernel: burst memory reader/writer, element (un)packing, AXI4-Lite registers.

All memory-side words are ``data_width`` bits wide and little-endian: element ``k`` of a buffer of
``element_bytes``-byte elements sits at byte offset ``k * element_bytes``. Buffers must start on a
``data_width / 8``-byte boundary (XRT allocates 4 KiB-aligned buffers).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from cores.fixed import Q
from cores.ports import lanes_signature

__all__ = ["axi4_signature", "axi4_lite_signature", "AxiBurstReader", "AxiBurstWriter", "WordsToElements",
           "ElementsToWords", "AxiLiteRegisters", "PAGE_BYTES"]

#: AXI4 bursts must not cross a 4 KiB boundary.
PAGE_BYTES = 4096

#: Most write bursts a writer has waiting for their response.
MAX_OUTSTANDING = 16


def axi4_signature(address_width=64, data_width=64):
    """An AXI4 master (the manager's view): the five channels, ``INCR`` bursts, one ID (always 0)."""
    return wiring.Signature({
        "awvalid": Out(1), "awready": In(1), "awid": Out(1), "awaddr": Out(address_width), "awlen": Out(8),
        "awsize": Out(3), "awburst": Out(2),
        "wvalid": Out(1), "wready": In(1), "wdata": Out(data_width), "wstrb": Out(data_width // 8),
        "wlast": Out(1),
        "bvalid": In(1), "bready": Out(1), "bid": In(1), "bresp": In(2),
        "arvalid": Out(1), "arready": In(1), "arid": Out(1), "araddr": Out(address_width), "arlen": Out(8),
        "arsize": Out(3), "arburst": Out(2),
        "rvalid": In(1), "rready": Out(1), "rid": In(1), "rdata": In(data_width), "rresp": In(2),
        "rlast": In(1),
    })


def axi4_lite_signature(address_width=12):
    """An AXI4-Lite manager with 32-bit data (a subordinate has ``In(axi4_lite_signature())``)."""
    return wiring.Signature({
        "awvalid": Out(1), "awready": In(1), "awaddr": Out(address_width),
        "wvalid": Out(1), "wready": In(1), "wdata": Out(32), "wstrb": Out(4),
        "bvalid": In(1), "bready": Out(1), "bresp": In(2),
        "arvalid": Out(1), "arready": In(1), "araddr": Out(address_width),
        "rvalid": In(1), "rready": Out(1), "rdata": In(32), "rresp": In(2),
    })


def _burst_beats(m, address, remaining, data_width, burst):
    """Beats of the next burst: at most ``burst``, what is left, and what fits before the next 4 KiB page."""
    beat_bytes = data_width // 8
    page_beats = PAGE_BYTES // beat_bytes
    offset_bits = ceil_log2(beat_bytes)
    to_page = Signal(range(page_beats + 1))
    beats = Signal(range(burst + 1))
    m.d.comb += to_page.eq(page_beats - address[offset_bits:ceil_log2(PAGE_BYTES)])
    m.d.comb += beats.eq(burst)
    with m.If(remaining < burst):
        m.d.comb += beats.eq(remaining)
    with m.If((to_page < burst) & (to_page < remaining)):
        m.d.comb += beats.eq(to_page)
    return beats


class AxiBurstReader(wiring.Component):
    """Reads ``words`` consecutive ``data_width``-bit words from memory into a stream, in bursts.

    A burst is requested only when the internal FIFO has room for all of it, so the read-data
    channel is never back-pressured and several bursts can be in flight: as many as the FIFO's
    ``depth`` holds, which is what hides the memory's latency.

    Parameters
    ----------
    data_width : int
        Bits per memory word (AXI data width).
    burst : int
        Longest burst in beats (at most 256).
    count_width : int
        Bits of the word count.
    depth : int, optional
        Words the FIFO holds; at least ``burst``, ``2 * burst`` by default.
    address_width : int
        Bits of a byte address (64 on the AXI4 masters of a kernel; fewer in a proof).

    Ports
    -----
    start : In(1)
        Pulse: begin reading ``words`` words from byte address ``address``.
    address : In(address_width), words : In(count_width)
        Sampled when ``start`` is high.
    busy : Out(1)
        A read is requested, in flight, or buffered.
    axi : Out(axi4_signature(address_width, data_width))
        The memory port; its write channels are idle.
    o : Out(stream.Signature(data_width))
        The words, in address order.

    Attributes
    ----------
    next_address, words_left : Signal
        The address of the next burst and the words not yet requested: the state that the
        memory-safety proof (:mod:`formal.kernel`) relates each request to.
    """

    def __init__(self, *, data_width=64, burst=32, count_width=40, depth=None, address_width=64):
        if not 1 <= burst <= 256:
            raise ValueError(f"AXI4 bursts hold 1 to 256 beats, not {burst}")
        depth = 2 * burst if depth is None else depth
        if depth < burst:
            raise ValueError(f"a FIFO of {depth} words cannot take a burst of {burst}")
        self._data_width = data_width
        self._burst = burst
        self._depth = depth
        super().__init__({
            "start": In(1), "address": In(address_width), "words": In(count_width), "busy": Out(1),
            "axi": Out(axi4_signature(address_width, data_width)),
            "o": Out(stream.Signature(data_width)),
        })
        self.next_address = Signal(address_width)
        self.words_left = Signal(count_width)

    def elaborate(self, platform):
        m = Module()
        axi, depth = self.axi, self._depth
        m.submodules.buffer = buffer = fifo.SyncFIFOBuffered(width=self._data_width, depth=depth)

        address, remaining = self.next_address, self.words_left
        # FIFO entries neither filled nor promised to a requested burst.
        credit = Signal(range(depth + 1), init=depth)
        beats = _burst_beats(m, address, remaining, self._data_width, self._burst)

        m.d.comb += [
            axi.arsize.eq(ceil_log2(self._data_width // 8)),
            axi.arburst.eq(0b01),  # INCR
            axi.awsize.eq(ceil_log2(self._data_width // 8)),
            axi.awburst.eq(0b01),
            axi.bready.eq(1),
        ]
        issue = Signal()
        m.d.comb += issue.eq(~axi.arvalid & (remaining != 0) & (credit >= beats))
        with m.If(self.start):
            m.d.sync += [address.eq(self.address), remaining.eq(self.words)]
        with m.Elif(issue):
            m.d.sync += [
                axi.arvalid.eq(1), axi.araddr.eq(address), axi.arlen.eq(beats - 1),
                address.eq(address + beats * (self._data_width // 8)), remaining.eq(remaining - beats),
            ]
        with m.If(axi.arvalid & axi.arready):
            m.d.sync += axi.arvalid.eq(0)
        popped = self.o.valid & self.o.ready
        m.d.sync += credit.eq(credit - Mux(issue & ~self.start, beats, 0) + popped)

        m.d.comb += [
            axi.rready.eq(buffer.w_rdy),
            buffer.w_en.eq(axi.rvalid),
            buffer.w_data.eq(axi.rdata),
            self.o.valid.eq(buffer.r_rdy),
            self.o.payload.eq(buffer.r_data),
            buffer.r_en.eq(self.o.ready),
            self.busy.eq((remaining != 0) | axi.arvalid | (credit != depth)),
        ]
        return m


class AxiBurstWriter(wiring.Component):
    """Writes a stream of ``(data, strobe)`` words to ``words`` consecutive memory words, in bursts.

    A burst's address is issued only once all its data is buffered, so the write-data channel
    never waits for the stream. ``done`` pulses when the last write response has arrived.

    Parameters
    ----------
    data_width : int
        Bits per memory word (AXI data width).
    burst : int
        Longest burst in beats (at most 256).
    count_width : int
        Bits of the word count.
    address_width : int
        Bits of a byte address (64 on the AXI4 masters of a kernel; fewer in a proof).

    Ports
    -----
    start : In(1)
        Pulse: begin writing ``words`` words at byte address ``address``.
    address : In(address_width), words : In(count_width)
        Sampled when ``start`` is high.
    busy : Out(1)
        Words remain to be written or acknowledged.
    i : In(stream.Signature(data_width + data_width // 8))
        Data in the low bits, byte strobes above.
    axi : Out(axi4_signature(address_width, data_width))
        The memory port; its read channels are idle.

    Attributes
    ----------
    next_address, words_left, sending, beats_left : Signal
        The address of the next burst, the words not yet requested, whether the W beats of the
        last burst are still going out, and how many: the state that the memory-safety proof
        (:mod:`formal.kernel`) relates each request and beat to.
    """

    def __init__(self, *, data_width=64, burst=32, count_width=40, address_width=64):
        if not 1 <= burst <= 256:
            raise ValueError(f"AXI4 bursts hold 1 to 256 beats, not {burst}")
        self._data_width = data_width
        self._burst = burst
        super().__init__({
            "start": In(1), "address": In(address_width), "words": In(count_width), "busy": Out(1),
            "i": In(stream.Signature(data_width + data_width // 8)),
            "axi": Out(axi4_signature(address_width, data_width)),
        })
        self.next_address = Signal(address_width)
        self.words_left = Signal(count_width)
        self.sending = Signal()
        self.beats_left = Signal(range(burst + 1))

    def elaborate(self, platform):
        m = Module()
        axi, width = self.axi, self._data_width
        m.submodules.buffer = buffer = fifo.SyncFIFOBuffered(width=width + width // 8, depth=2 * self._burst)
        m.d.comb += [
            buffer.w_en.eq(self.i.valid), buffer.w_data.eq(self.i.payload), self.i.ready.eq(buffer.w_rdy),
        ]

        address, remaining = self.next_address, self.words_left
        sending, beats_left = self.sending, self.beats_left
        # Bursts issued whose write response has not arrived; capped like a memory controller's queue.
        responses = Signal(range(MAX_OUTSTANDING + 1))
        beats = _burst_beats(m, address, remaining, width, self._burst)

        m.d.comb += [
            axi.awsize.eq(ceil_log2(width // 8)),
            axi.awburst.eq(0b01),  # INCR
            axi.arsize.eq(ceil_log2(width // 8)),
            axi.arburst.eq(0b01),
            axi.rready.eq(1),
            axi.bready.eq(1),
        ]
        issue = Signal()
        m.d.comb += issue.eq(~sending & ~axi.awvalid & (remaining != 0) & (buffer.level >= beats)
                             & (responses != MAX_OUTSTANDING))
        with m.If(self.start):
            m.d.sync += [address.eq(self.address), remaining.eq(self.words)]
        with m.Elif(issue):
            m.d.sync += [
                axi.awvalid.eq(1), axi.awaddr.eq(address), axi.awlen.eq(beats - 1),
                address.eq(address + beats * (width // 8)), remaining.eq(remaining - beats),
                sending.eq(1), beats_left.eq(beats),
            ]
        with m.If(axi.awvalid & axi.awready):
            m.d.sync += axi.awvalid.eq(0)

        m.d.comb += [
            axi.wvalid.eq(sending & buffer.r_rdy),
            axi.wdata.eq(buffer.r_data[:width]),
            axi.wstrb.eq(buffer.r_data[width:]),
            axi.wlast.eq(beats_left == 1),
            buffer.r_en.eq(sending & axi.wready),
        ]
        with m.If(axi.wvalid & axi.wready):
            m.d.sync += beats_left.eq(beats_left - 1)
            with m.If(beats_left == 1):
                m.d.sync += sending.eq(0)

        m.d.sync += responses.eq(responses + (issue & ~self.start) - (axi.bvalid & axi.bready))
        m.d.comb += self.busy.eq((remaining != 0) | sending | axi.awvalid | (responses != 0))
        return m


def _element_bytes(fmt):
    return 4 if fmt.width <= 32 else 8


class WordsToElements(wiring.Component):
    """Splits memory words into fixed-point elements stored as sign-extended 32- or 64-bit integers.

    Elements are 4 bytes when ``fmt`` fits 32 bits, else 8. A stored integer outside ``fmt``'s
    range saturates. After ``count`` elements the rest of the last word is dropped.

    Ports
    -----
    start : In(1)
        Pulse: expect ``count`` elements (sampled with ``start``).
    count : In(count_width)
    i : In(stream.Signature(data_width))
        Memory words.
    o : Out(lanes_signature(fmt, 1))
        Elements in memory order.
    busy : Out(1)
        Elements remain to be sent.
    """

    def __init__(self, fmt: Q, *, data_width=64, count_width=40):
        self._fmt = fmt
        self._element_bits = 8 * _element_bytes(fmt)
        if data_width % self._element_bits:
            raise ValueError(f"{data_width}-bit words do not hold whole {self._element_bits}-bit elements")
        self._per_word = data_width // self._element_bits
        super().__init__({
            "start": In(1), "count": In(count_width), "busy": Out(1),
            "i": In(stream.Signature(data_width)),
            "o": Out(lanes_signature(fmt, 1)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt, bits = self._fmt, self._element_bits
        left = Signal.like(self.count)
        lane = Signal(range(self._per_word))
        stored = Signal(signed(bits))
        if self._per_word == 1:
            m.d.comb += stored.eq(self.i.payload)
        else:
            m.d.comb += stored.eq(self.i.payload.word_select(lane, bits))
        element = Signal(fmt.shape)
        m.d.comb += element.eq(stored)
        with m.If(stored > fmt.max_raw):
            m.d.comb += element.eq(fmt.max_raw)
        with m.If(stored < fmt.min_raw):
            m.d.comb += element.eq(fmt.min_raw)

        sent = self.o.valid & self.o.ready
        last_of_word = (lane == self._per_word - 1) | (left == 1)
        m.d.comb += [
            self.o.valid.eq(self.i.valid & (left != 0)),
            self.o.payload[0].eq(element),
            self.i.ready.eq(sent & last_of_word),
            self.busy.eq(left != 0),
        ]
        with m.If(self.start):
            m.d.sync += [left.eq(self.count), lane.eq(0)]
        with m.Elif(sent):
            m.d.sync += [left.eq(left - 1), lane.eq(Mux(last_of_word, 0, lane + 1))]
        return m


class ElementsToWords(wiring.Component):
    """Packs fixed-point elements into memory words as sign-extended 32- or 64-bit integers.

    Elements are 4 bytes when ``fmt`` fits 32 bits, else 8. The last word of ``count`` elements
    is sent with byte strobes covering only the elements it holds.

    Ports
    -----
    start : In(1)
        Pulse: expect ``count`` elements (sampled with ``start``).
    count : In(count_width)
    i : In(lanes_signature(fmt, 1))
        Elements in memory order.
    o : Out(stream.Signature(data_width + data_width // 8))
        Word data in the low bits, byte strobes above.
    busy : Out(1)
        Elements remain to be received.
    """

    def __init__(self, fmt: Q, *, data_width=64, count_width=40):
        self._fmt = fmt
        self._data_width = data_width
        self._element_bits = 8 * _element_bytes(fmt)
        if data_width % self._element_bits:
            raise ValueError(f"{data_width}-bit words do not hold whole {self._element_bits}-bit elements")
        self._per_word = data_width // self._element_bits
        super().__init__({
            "start": In(1), "count": In(count_width), "busy": Out(1),
            "i": In(lanes_signature(fmt, 1)),
            "o": Out(stream.Signature(data_width + data_width // 8)),
        })

    def elaborate(self, platform):
        m = Module()
        bits, per_word = self._element_bits, self._per_word
        left = Signal.like(self.count)
        lane = Signal(range(per_word))
        held = [Signal(bits, name=f"held{k}") for k in range(per_word - 1)]
        element = Signal(signed(bits))
        m.d.comb += element.eq(self.i.payload[0])

        received = self.i.valid & self.i.ready
        last_of_word = (lane == per_word - 1) | (left == 1)
        raw = element.as_unsigned()
        data = Cat(*[Mux(lane == k, raw, held[k]) for k in range(per_word - 1)], raw)
        strobes = Cat(*[Mux(lane >= k, Const(2 ** (bits // 8) - 1, bits // 8), 0) for k in range(per_word)])
        m.d.comb += [
            self.i.ready.eq(self.o.ready & (left != 0)),
            self.o.valid.eq(self.i.valid & (left != 0) & last_of_word),
            self.o.payload.eq(Cat(data, strobes)),
            self.busy.eq(left != 0),
        ]
        with m.If(self.start):
            m.d.sync += [left.eq(self.count), lane.eq(0)]
        with m.Elif(received):
            m.d.sync += [left.eq(left - 1), lane.eq(Mux(last_of_word, 0, lane + 1))]
            for k in range(per_word - 1):
                with m.If(lane == k):
                    m.d.sync += held[k].eq(element)
        return m


class AxiLiteRegisters(wiring.Component):
    """The ``s_axi_control`` register file of a Vitis kernel with ``ap_ctrl_hs`` control.

    Parameters
    ----------
    arguments : list of (str, int, int)
        ``(name, offset, bits)`` of each argument register, ``bits`` 32 or 64 (low word at
        ``offset``, high word at ``offset + 4``).
    status : list of (str, int, int)
        ``(name, offset, bits)`` of read-only status registers (at most 32 bits).
    address_width : int
        Bits of the AXI4-Lite address.

    Register map
    ------------
    0x00 control: bit 0 ap_start (R/W, cleared when the run ends unless auto_restart), bit 1 ap_done
    (R, clear on read), bit 2 ap_idle (R), bit 3 ap_ready (R, clear on read), bit 7 auto_restart (R/W).
    0x04 global interrupt enable (bit 0). 0x08 interrupt enable: bit 0 ap_done, bit 1 ap_ready.
    0x0C interrupt status (toggle on write): bit 0 ap_done, bit 1 ap_ready.

    Ports
    -----
    bus : In(axi4_lite_signature(address_width))
    start : Out(1)
        Pulse: a run begins (arguments are stable until ``done``).
    running : Out(1)
        From the cycle after ``start`` to the cycle of ``done`` (ap_idle low).
    done : In(1)
        Pulse: the run has finished (ap_done and ap_ready).
    interrupt : Out(1)
        Level interrupt: global enable and an enabled, pending status bit.
    <argument name> : Out(bits)
    <status name> : In(bits)
    """

    def __init__(self, arguments, status=(), *, address_width=12):
        self._arguments = list(arguments)
        self._status = list(status)
        members = {"bus": In(axi4_lite_signature(address_width)), "start": Out(1), "running": Out(1),
                   "done": In(1), "interrupt": Out(1)}
        for name, _, bits in self._arguments:
            members[name] = Out(bits)
        for name, _, bits in self._status:
            members[name] = In(bits)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        ap_start, ap_done, ap_ready, auto_restart = Signal(), Signal(), Signal(), Signal()
        running = self.running
        gie, ier, isr = Signal(), Signal(2), Signal(2)

        # Write: take address and data together, answer OKAY.
        write = Signal()
        m.d.comb += [
            write.eq(bus.awvalid & bus.wvalid & ~bus.bvalid),
            bus.awready.eq(write), bus.wready.eq(write), bus.bresp.eq(0),
        ]
        with m.If(write):
            m.d.sync += bus.bvalid.eq(1)
        with m.Elif(bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        word = bus.awaddr[2:]

        def written(offset):
            return write & (word == offset // 4)

        def byte_mask(value, data):
            """``value`` with the bytes of ``data`` that the write strobes select."""
            return Cat(*[Mux(bus.wstrb[k], data[8 * k:8 * k + 8], value[8 * k:8 * k + 8])
                         for k in range(len(value) // 8)], value[len(value) // 8 * 8:])

        for name, offset, bits in self._arguments:
            register = getattr(self, name)
            for half in range(bits // 32):
                with m.If(written(offset + 4 * half)):
                    part = register[32 * half:32 * half + 32]
                    m.d.sync += part.eq(byte_mask(part, bus.wdata))
        with m.If(written(0x04) & bus.wstrb[0]):
            m.d.sync += gie.eq(bus.wdata[0])
        with m.If(written(0x08) & bus.wstrb[0]):
            m.d.sync += ier.eq(bus.wdata[:2])

        # Read: one outstanding read, data registered.
        read = Signal()
        m.d.comb += [read.eq(bus.arvalid & ~bus.rvalid), bus.arready.eq(read), bus.rresp.eq(0)]
        with m.If(read):
            m.d.sync += bus.rvalid.eq(1)
        with m.Elif(bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        read_word = bus.araddr[2:]
        control_read = read & (read_word == 0)
        with m.If(read):
            with m.Switch(read_word):
                with m.Case(0):
                    m.d.sync += bus.rdata.eq(Cat(ap_start, ap_done, ~running, ap_ready, Const(0, 3), auto_restart))
                with m.Case(0x04 // 4):
                    m.d.sync += bus.rdata.eq(gie)
                with m.Case(0x08 // 4):
                    m.d.sync += bus.rdata.eq(ier)
                with m.Case(0x0C // 4):
                    m.d.sync += bus.rdata.eq(isr)
                for name, offset, bits in self._arguments:
                    for half in range(bits // 32):
                        with m.Case((offset + 4 * half) // 4):
                            m.d.sync += bus.rdata.eq(getattr(self, name)[32 * half:32 * half + 32])
                for name, offset, bits in self._status:
                    with m.Case(offset // 4):
                        m.d.sync += bus.rdata.eq(getattr(self, name))
                with m.Default():
                    m.d.sync += bus.rdata.eq(0)

        # ap_ctrl_hs: a run starts when ap_start is set while idle, and ends with done.
        start_run = ap_start & ~running & ~self.done
        m.d.comb += self.start.eq(start_run)
        with m.If(start_run):
            m.d.sync += running.eq(1)
        with m.If(self.done):
            m.d.sync += running.eq(0)

        with m.If(self.done):
            m.d.sync += [ap_done.eq(1), ap_ready.eq(1)]
        with m.Elif(control_read):
            m.d.sync += [ap_done.eq(0), ap_ready.eq(0)]

        with m.If(written(0x00) & bus.wstrb[0]):
            m.d.sync += auto_restart.eq(bus.wdata[7])
            with m.If(bus.wdata[0]):
                m.d.sync += ap_start.eq(1)
        with m.Elif(self.done & ~auto_restart):
            m.d.sync += ap_start.eq(0)

        toggles = Mux(written(0x0C) & bus.wstrb[0], bus.wdata[:2], 0)
        m.d.sync += isr.eq((isr ^ toggles) | Mux(self.done, ier, 0))
        m.d.comb += self.interrupt.eq(gie & (isr != 0))
        return m

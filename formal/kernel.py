"""Memory safety of the Vitis kernel (:mod:`boards.vitis_kernel`), for any values a host writes.

:class:`KernelSpec` surrounds the kernel of a design with a free world:

* a host on ``s_axi_control`` that writes any register at any time (AXI4-Lite rules assumed: a
  request holds, unchanged, until it is taken), so a run starts with any buffer addresses and any
  ``batch``;
* a memory behind every AXI4 master that stalls any channel at will and answers only what was
  asked (read data for requested beats, one write response per written burst);
* in place of the design (module ``top``, a black box in the kernel), :class:`DesignStandIn`: any
  design with the same ports that obeys the stream protocol, taking and giving tokens whenever it
  likes.

With ``B`` a buffer's address and ``batch`` the register values a run started with, and ``E``
the buffer's extent in bytes (``batch`` × bytes per sample), the properties are, in two sets:

:data:`MEMORY`, proved by k-induction: in every reachable state, whatever the run's length and
the register values:

* ``<port>_reads_inside``: every read burst lies in ``[B, B + E)`` rounded up to whole
  words of its master's data width (a beat reads a whole word): no read past the input buffer,
  nor past the weights buffer;
* ``<port>_words_inside``: every write beat's word lies in that range;
* ``<port>_<channel>_inside_page``: no burst crosses a 4 KiB boundary;
* ``<port>_<channel>_holds``: AR, AW and W keep VALID and their payload until READY, and so do the
  kernel's AXI4-Lite responses (``s_axi_control_<channel>_holds``);
* ``<port>_wlast_on_last_beat``: WLAST is high on exactly the last beat of each burst;
* ``<port>_one_direction`` and ``<port>_idle_outside_runs``: a read master never writes, a write
  master never reads, and neither moves outside a run;
* ``done_once_per_start`` and ``start_only_when_idle``: ``ap_done`` rises once for each run
  started, never outside one, and a run starts only once the last is done;
* the invariants that make these inductive (``*_invariant_*``): how each master's next address,
  words left and beats left relate to the request on the bus, to ``B`` and to ``E``.

:data:`BYTES`, by bounded model checking from reset:

* ``<port>_writes_inside``: every byte a write beat's strobes select lies in ``[B, B + E)``, the
  run's last, partly filled word included. (Its induction would need invariants over the write
  FIFO's contents.)

Preconditions, assumed of the values a run starts with: every buffer is aligned to its master's
words (as the kernel documents and XRT's buffers are) and ends below the top of the address
space, and ``batch`` fits ``batch_bits``.

Which buffers are read is :data:`READ_EXTENTS`, with the extent of each; every other buffer is
a written output. The ``weights`` buffer of a design with runtime weights is read only by a run
that starts with ``reload_weights`` bit 0 set (:data:`READ_IF`), its extent the weight image's
words, whatever the batch, each word :data:`~cores.weights.WORD_BITS` bits wide.
"""

from dataclasses import dataclass

from amaranth.asserts import AnySeq
from amaranth.back import rtlil
from amaranth.hdl import Assume, Cat, ClockDomain, ClockSignal, DomainRenamer, Elaboratable, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.utils import ceil_log2

from boards.axi import PAGE_BYTES
from boards.harness import design_ports
from boards.vitis_kernel import BURST_BEATS, VitisKernel, kernel_arguments
from inrarch.build import kernel_streams

from .proof import check, cover, prove

__all__ = ["READ_EXTENTS", "READ_IF", "MEMORY", "BYTES", "NARROW", "DesignStandIn", "KernelSpec", "kernel_proof"]

#: The buffers the kernel reads, each with its extent in bytes from its argument and the run's
#: ``batch``. Every other buffer argument is written, ``batch`` samples of its elements.
READ_EXTENTS = {
    "x": lambda argument, batch: batch * (argument.elements_per_sample * argument.element_bytes),
    "weights": lambda argument, batch: argument.words * argument.element_bytes,
}

#: Buffers that a run reads only if a register it started with says so (the register file given).
READ_IF = {
    "weights": lambda registers: registers.reload_weights[0],
}

MEMORY, BYTES = "memory", "bytes"


def _extent(argument, batch):
    if argument.name in READ_EXTENTS:
        return READ_EXTENTS[argument.name](argument, batch)
    return batch * (argument.elements_per_sample * argument.element_bytes)


@dataclass
class _Buffer:
    """A buffer in the current run: its words' address bits (``shift``: log2 of the bytes in a
    beat), and, as the spec's own registers, its base address, words and end byte address."""

    shift: int
    base: Signal
    words: Signal
    end: Signal

    def words_of(self, extent):
        return (extent + (1 << self.shift) - 1) >> self.shift

    @property
    def top(self):
        """The byte address after its last word."""
        return self.base + (self.words << self.shift)


class DesignStandIn(wiring.Component):
    """Any design with ports ``signature`` that obeys the stream protocol: its outputs' tokens
    come when they like and hold until taken, its input takes tokens when it likes, its other
    outputs are anything. Converted as module ``top``, it takes the design's place in the kernel."""

    def elaborate(self, platform):
        m = Module()
        for name, member in self.signature.members.items():
            port = getattr(self, name)
            if member.is_signature and isinstance(member.signature, stream.Signature):
                if member.flow == wiring.Out:
                    _offers(m, name, port.valid, port.ready, port.payload.as_value())
                else:
                    m.d.comb += port.ready.eq(AnySeq(1))
            elif member.flow == wiring.Out:
                m.d.comb += port.eq(AnySeq(len(port)))
        return m


def _offers(m, name, valid, ready, payload=None, *, only_if=1):
    """Drive a free request (with its ``payload``) that holds until taken, and that is offered
    anew only while ``only_if``."""
    m.d.comb += valid.eq(AnySeq(1))
    waiting = Signal(name=f"{name}_offered")
    m.d.sync += waiting.eq(valid & ~ready)
    if payload is not None:
        shown = Signal(len(payload), name=f"{name}_offer")
        m.d.comb += payload.eq(AnySeq(len(payload)))
        m.d.sync += shown.eq(payload)
        m.d.comb += Assume(~waiting | (valid & (payload == shown)))
    else:
        m.d.comb += Assume(~waiting | valid)
    m.d.comb += Assume(~valid | waiting | only_if)
    return waiting


class KernelSpec(Elaboratable):
    """The kernel of a design's ``arguments`` (:func:`boards.vitis_kernel.kernel_arguments`) and
    ``ports`` (:func:`boards.harness.design_ports`) with ``lanes``, in a free world, and its
    properties (see the module's docstring).

    Parameters
    ----------
    properties : sequence of str
        :data:`MEMORY`, :data:`BYTES` or both.
    bound : int
        The depth it is checked to: the monitors' counters are sized for it.
    address_width, count_width, burst
        The kernel's (:class:`~boards.vitis_kernel.VitisKernel`): a proof may build it narrower.
    batch_bits : int
        ``batch`` is assumed below ``2**batch_bits``, so that element counts fit ``count_width``.
    """

    def __init__(self, arguments, ports, *, lanes=1, properties=(MEMORY, BYTES), bound, address_width=64,
                 count_width=48, burst=BURST_BEATS, batch_bits=32):
        per_sample = max(a.elements_per_sample * a.element_bytes for a in arguments if a.is_buffer)
        if batch_bits + ceil_log2(per_sample + 1) > count_width:
            raise ValueError(f"a batch of {batch_bits} bits overflows the kernel's {count_width}-bit counters")
        self.arguments = arguments
        self.properties = tuple(properties)
        self.bound = bound
        self.address_width = address_width
        self.count_width = count_width
        self.batch_bits = batch_bits
        self.burst = burst
        self.kernel = VitisKernel(arguments, ports, lanes=lanes, address_width=address_width,
                                  count_width=count_width, burst=burst)
        self.kernel._MustUse__silence = True  # elaborated by the spec itself, to reach its parts

    @property
    def clock(self):
        """The kernel's clock, an input of the spec (yosys takes a clock only from a port)."""
        return self.kernel.ap_clk

    def elaborate(self, platform):
        top = Module()
        kernel = self.kernel
        # The kernel's own module, so that its register file and memory masters can be watched.
        top.submodules.kernel = body = kernel.elaborate(platform)
        registers = body.submodules.control
        top.d.comb += kernel.ap_rst_n.eq(1)
        # The world and the checks, clocked by the kernel's clock (its `sync` is the kernel's own).
        top.domains.world = ClockDomain(reset_less=True)
        top.d.comb += ClockSignal("world").eq(kernel.ap_clk)
        m = Module()
        top.submodules.world = DomainRenamer("world")(m)

        def port(prefix, member):
            return getattr(kernel, f"{prefix}_{member}")

        self._host(m, lambda member: port("s_axi_control", member))

        start, done = registers.start, registers.done
        batch = Signal(self.batch_bits, name="batch_of_run")
        with m.If(start):
            m.d.sync += batch.eq(registers.batch)
            m.d.comb += Assume(registers.batch < (1 << self.batch_bits))
        running = self._runs(m, registers, batch)
        for argument in self.arguments:
            if not argument.is_buffer:
                continue
            name = argument.port
            axi = lambda member, prefix=name: port(prefix, member)
            master = body.submodules[f"{argument.name}_memory"]
            read = argument.name in READ_EXTENTS
            reads = READ_IF[argument.name](registers) if argument.name in READ_IF else None
            buffer = self._buffer(m, argument, getattr(registers, argument.name), start, reads,
                                  registers.batch, batch)
            self._memory(m, name, axi)
            if read:
                self._reader(m, name, axi, master, buffer)
                if argument.name == "weights":
                    # the weights master requests only while the run loads them, which ends within the run
                    requesting = (master.words_left != 0) | axi("arvalid")
                    self._check(m, MEMORY, "weights_invariant_loading",
                                (~requesting | kernel.loading_weights) & (~kernel.loading_weights | running))
                    cover(m, "weights_read_requested", axi("arvalid") & axi("arready"))
            else:
                # a run's last word is partly written when a sample is not whole words
                partial = (argument.elements_per_sample * argument.element_bytes) % (1 << buffer.shift) != 0
                self._writer(m, name, axi, master, buffer, partial)
            idle = ~axi("arvalid") if read else ~axi("awvalid") & ~axi("wvalid") & ~master.sending
            self._check(m, MEMORY, f"{name}_idle_outside_runs", running | (idle & (master.words_left == 0)))
        return top

    def _runs(self, m, registers, batch):
        """A run from its start to its done: ``done_once_per_start``, ``start_only_when_idle``, the
        register file's run flag the same, and a cover of a whole run of two samples."""
        running = Signal(name="run_under_way")
        with m.If(registers.start):
            m.d.sync += running.eq(1)
        with m.Elif(registers.done):
            m.d.sync += running.eq(0)
        self._check(m, MEMORY, "done_once_per_start", ~registers.done | running)
        self._check(m, MEMORY, "start_only_when_idle", ~registers.start | ~running)
        self._check(m, MEMORY, "invariant_running", running == registers.running)
        cover(m, "run_of_two_samples_done", registers.done & (batch == 2))
        return running

    def _buffer(self, m, argument, register, start, reads, start_batch, batch):
        """The buffer in the current run (a :class:`_Buffer`), taken from ``register`` at a
        ``start`` (one with ``reads`` high, if given: a run without it leaves the buffer alone),
        and the invariants that tie it to ``batch``."""
        width = self.address_width
        buffer = _Buffer(shift=ceil_log2(argument.data_width // 8), base=Signal(width, name=f"{argument.name}_base"),
                         words=Signal(self.count_width, name=f"{argument.name}_words"),
                         end=Signal(width + 1, name=f"{argument.name}_end"))
        shift, base, words, end = buffer.shift, buffer.base, buffer.words, buffer.end
        with m.If(start if reads is None else start & reads):
            extent = _extent(argument, start_batch)
            m.d.sync += [base.eq(register), words.eq(buffer.words_of(extent)), end.eq(register + extent)]
            # the buffer is aligned and lies in the address space (as XRT's buffers do)
            m.d.comb += Assume((register[:shift] == 0) & (register[width:] == 0)
                               & (register + (buffer.words_of(extent) << shift) < (1 << width)))
        extent = _extent(argument, batch)
        taken = (words == buffer.words_of(extent)) & (end == base + extent)
        if reads is not None:
            # or no run has read it yet
            taken |= (words == 0) & (base == 0) & (end == 0)
        self._check(m, MEMORY, f"{argument.name}_invariant_run",
                    (base[:shift] == 0) & taken & (buffer.top < (1 << width)))
        return buffer

    def _check(self, m, group, name, condition):
        """Check ``condition`` as property ``name`` if the spec checks ``group``."""
        if group in self.properties:
            check(m, name, condition)

    def _host(self, m, bus):
        """A free AXI4-Lite manager on the control port; the kernel's answers hold until taken."""
        _offers(m, "host_aw", bus("awvalid"), bus("awready"), bus("awaddr"))
        _offers(m, "host_w", bus("wvalid"), bus("wready"), Cat(bus("wdata"), bus("wstrb")))
        _offers(m, "host_ar", bus("arvalid"), bus("arready"), bus("araddr"))
        m.d.comb += [bus("bready").eq(AnySeq(1)), bus("rready").eq(AnySeq(1))]
        self._holds(m, "s_axi_control_b", bus("bvalid"), bus("bready"), bus("bresp"))
        self._holds(m, "s_axi_control_r", bus("rvalid"), bus("rready"), Cat(bus("rdata"), bus("rresp")))

    def _memory(self, m, name, axi):
        """A memory that stalls at will and answers only what was asked."""
        m.d.comb += [axi(signal).eq(AnySeq(1)) for signal in ("awready", "wready", "arready", "rlast")]
        m.d.comb += [axi("bid").eq(0), axi("rid").eq(0), axi("bresp").eq(0), axi("rresp").eq(0)]
        beats_owed = Signal(range(256 * (self.bound + 1) + 1), name=f"{name}_read_beats_owed")
        asked = Mux(axi("arvalid") & axi("arready"), axi("arlen") + 1, 0)
        m.d.sync += beats_owed.eq(beats_owed + asked - (axi("rvalid") & axi("rready")))
        _offers(m, f"{name}_r", axi("rvalid"), axi("rready"), axi("rdata"), only_if=beats_owed != 0)
        responses_owed = Signal(range(self.bound + 2), name=f"{name}_responses_owed")
        written = axi("wvalid") & axi("wready") & axi("wlast")
        m.d.sync += responses_owed.eq(responses_owed + written - (axi("bvalid") & axi("bready")))
        _offers(m, f"{name}_b", axi("bvalid"), axi("bready"), only_if=responses_owed != 0)

    def _request(self, m, name, channel, axi, master, buffer):
        """The AR or AW channel's rules, and its request tied to the master's next burst."""
        shift, words = buffer.shift, buffer.words
        valid, ready = axi(f"{channel}valid"), axi(f"{channel}ready")
        address, length = axi(f"{channel}addr"), axi(f"{channel}len")
        payload = Cat(address, length, axi(f"{channel}size"), axi(f"{channel}burst"))
        waiting = self._holds(m, f"{name}_{channel}", valid, ready, payload)
        beats = length + 1
        self._check(m, MEMORY, f"{name}_{channel}_inside_page",
                    ~valid | (address[:12] + (beats << shift) <= PAGE_BYTES))
        self._check(m, MEMORY, f"{name}_{channel}_whole_words",
                    ~valid | ((axi(f"{channel}size") == shift) & (axi(f"{channel}burst") == 0b01)
                              & (address[:shift] == 0)))
        # The master's next burst starts where the presented one ends, and words remain for it.
        self._check(m, MEMORY, f"{name}_invariant_next_burst",
              (master.next_address[:shift] == 0) & (master.words_left <= words)
              & (~valid | ((address + (beats << shift) == master.next_address)
                           & (master.words_left + beats <= words))))
        return valid & ~waiting

    def _holds(self, m, name, valid, ready, payload):
        waiting, shown = Signal(name=f"{name}_waiting"), Signal(len(payload), name=f"{name}_shown")
        m.d.sync += [waiting.eq(valid & ~ready), shown.eq(payload)]
        self._check(m, MEMORY, f"{name}_holds", ~waiting | (valid & (payload == shown)))
        return waiting

    def _ends_where_it_began(self, m, name, master, buffer):
        self._check(m, MEMORY, f"{name}_invariant_addresses",
                    master.next_address + (master.words_left << buffer.shift) == buffer.top)

    def _inside(self, m, name, what, valid, address, beats, buffer):
        self._check(m, MEMORY, f"{name}_{what}_inside",
                    ~valid | ((address >= buffer.base) & (address + (beats << buffer.shift) <= buffer.top)))

    def _reader(self, m, name, axi, master, buffer):
        self._request(m, name, "ar", axi, master, buffer)
        self._ends_where_it_began(m, name, master, buffer)
        self._inside(m, name, "reads", axi("arvalid"), axi("araddr"), axi("arlen") + 1, buffer)
        self._check(m, MEMORY, f"{name}_one_direction", ~axi("awvalid") & ~axi("wvalid"))

    def _writer(self, m, name, axi, master, buffer, partial):
        shift, base, words, end = buffer.shift, buffer.base, buffer.words, buffer.end
        new_request = self._request(m, name, "aw", axi, master, buffer)
        self._ends_where_it_began(m, name, master, buffer)
        self._holds(m, f"{name}_w", axi("wvalid"), axi("wready"), Cat(axi("wdata"), axi("wstrb"), axi("wlast")))
        self._check(m, MEMORY, f"{name}_one_direction", ~axi("arvalid"))

        # The burst each W beat belongs to: the oldest presented AW whose beats are not all sent,
        # or the AW presented in this very cycle (AXI lets W go before AW is accepted).
        entries = [(Signal(len(axi("awaddr")), name=f"{name}_burst{k}_address"),
                    Signal(8, name=f"{name}_burst{k}_length")) for k in range(2)]
        slot, head = Signal(name=f"{name}_next_slot"), Signal(name=f"{name}_head_slot")
        ahead = Signal(2, name=f"{name}_bursts_ahead")  # presented, their W not all sent
        beat = Signal(8, name=f"{name}_beat")
        with m.If(new_request):
            m.d.sync += slot.eq(~slot)
            for k, (address, length) in enumerate(entries):
                with m.If(slot == k):
                    m.d.sync += [address.eq(axi("awaddr")), length.eq(axi("awlen"))]
        sent = axi("wvalid") & axi("wready")
        burst_done = sent & axi("wlast")
        m.d.sync += ahead.eq(ahead + new_request - burst_done)
        with m.If(burst_done):
            m.d.sync += head.eq(~head)
        with m.If(sent):
            m.d.sync += beat.eq(Mux(axi("wlast"), 0, beat + 1))
        address = Mux(ahead != 0, Mux(head, entries[1][0], entries[0][0]), axi("awaddr"))
        length = Mux(ahead != 0, Mux(head, entries[1][1], entries[0][1]), axi("awlen"))
        self._check(m, MEMORY, f"{name}_w_follows_aw", ~axi("wvalid") | (ahead != 0) | new_request)
        self._check(m, MEMORY, f"{name}_wlast_on_last_beat", ~axi("wvalid") | (axi("wlast") == (beat == length)))
        beat_address = address + (beat << shift)
        self._inside(m, name, "words", axi("wvalid"), beat_address, 1, buffer)
        # this writer presents the next burst only once the last one's beats are out
        self._check(m, MEMORY, f"{name}_invariant_one_burst",
                    (ahead <= 1) & (master.sending == ((ahead == 1) | new_request)) & ((head ^ ahead[0]) == slot)
                    & (~axi("awvalid") | (ahead == 0) | ((address == axi("awaddr")) & (length == axi("awlen")))))
        self._check(m, MEMORY, f"{name}_invariant_beats", Mux(
            master.sending, (address + ((length + 1) << shift) == master.next_address)
            & (master.words_left + length + 1 <= words) & (beat + master.beats_left == length + 1)
            & (master.beats_left != 0) & (length < self.burst), beat == 0))
        strobes = axi("wstrb")
        inside = Cat(~strobes[b] | ((beat_address + b >= base) & (beat_address + b < end)) for b in range(len(strobes)))
        self._check(m, BYTES, f"{name}_writes_inside", ~axi("wvalid") | inside.all())
        if partial:
            cover(m, f"{name}_part_word_written", axi("wvalid") & axi("wready") & ~strobes.all())


#: Widths of the kernel in the proofs that CI runs: 16-bit addresses (16 pages of 4 KiB),
#: 16-bit counters and an 8-bit batch. ``bench.formal`` proves the kernel as built, 64 and 48 bits.
NARROW = {"address_width": 16, "count_width": 16, "batch_bits": 8}


def kernel_proof(design, *, properties=(MEMORY, BYTES), mode="bmc", depth, solver=None, directory=None, timeout=None,
                 **widths):
    """A proof of the Vitis kernel of the compiled ``design``: ``mode="bmc"`` bounded to ``depth``
    cycles, ``"prove"`` by k-induction of length ``depth``, ``"cover"`` the covers within
    ``depth``. ``widths`` are :class:`KernelSpec`'s (the kernel as built by default); ``timeout``
    as :func:`~formal.proof.prove`'s."""
    arguments = kernel_arguments(kernel_streams(design), design.weight_words)
    stand_in = rtlil.convert(DesignStandIn(design.elaboratable.signature), name="top", platform="formal")
    spec = KernelSpec(arguments, design_ports(design.elaboratable), lanes=design.netlist.lanes,
                      properties=properties, bound=depth, **widths)
    options = {} if solver is None else {"solver": solver}
    name = f"Vitis kernel ({', '.join(f'{k} {v}' for k, v in widths.items()) or 'as built'}): {' and '.join(properties)}"
    return prove(spec, name=name, mode=mode, depth=depth, directory=directory, modules=[stand_in],
                 ports=[spec.clock], timeout=timeout, **options)

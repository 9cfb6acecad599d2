# amaranth: UnusedElaboratable=no
# (The banks and lanes built here become shared modules, cores.shared: a part that stands for its module is
# not elaborated itself.)
"""Weight-stationary matrix-vector products with the weights in on-chip memory.

:class:`MatVec` multiplies streamed vectors by a constant matrix ``W`` and, through a second
channel, by its transpose, reading both from one stored copy of ``W``. The matrix is skewed across
``P`` memory banks so that a column of a block of rows (the forward product) and a row of a block
of columns (the transposed product) both fall in ``P`` different banks.

A stream of ``S`` lanes carries ``S`` independent vectors (samples), element ``j`` of each per
beat. Every sample is multiplied by the same ``W``: a weight read once feeds ``S`` multipliers,
so the weight bandwidth does not grow with ``S``.

The banks, and each channel's lanes and groups of lanes, are parts of their own
(:class:`~cores.shared.Shared`), so that hierarchical Verilog converts each distinct part once:
the ``P`` lanes of a channel are identical, and cores on one matrix hold the same banks.
"""

import functools
import math
from typing import NamedTuple

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .contract import TimingContract
from .elementwise import constant_format
from .fixed import Q, convert_raw, exact_integers, exact_matmul
from .model import ModelledComponent, Storage
from .multiply import DSP48E2, Multiplier
from .pipelining import UNPIPELINED
from .ports import lanes_signature
from .shared import Shared, module_name
from .weights import WORD_BITS, WeightLayout, load_signature, segment_writes, skewed_banks

__all__ = ["MatVec", "MatVecChannel", "MatVecCycles"]

_KINDS = ("forward", "transpose")


class MatVecModel:
    """The model of :class:`MatVec`."""

    pass_latency = 6
    """Cycles from the issue of a pass's last step to its first output: read, weight register,
    multiply, accumulate, output buffer, saturation. An instance whose product takes more than one
    stage (split, with operand registers, or in a DSP48E2's M and P registers) adds them:
    ``5 + multiplier.latency``. The first pass's last step issues the cycle after a firing's last
    beat, so the latency is ``pass_latency + 1``."""

    def __init__(self, weights, in_format, out_format, *, channels=("forward",), parallel=8, lanes=1,
                 weight_width=None, weight_bound=None, word_bits=WORD_BITS, dsp_shape=DSP48E2, pipelining=UNPIPELINED,
                 rounding="nearest", overflow="saturate"):
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 2 or 0 in weights.shape:
            raise ValueError(f"weights must be a non-empty matrix, not of shape {weights.shape}")
        channels = tuple(channels)
        if not 1 <= len(channels) <= 2:
            raise ValueError(f"MatVec has one or two channels (the ports of a BRAM), not {len(channels)}")
        if any(kind not in _KINDS for kind in channels):
            raise ValueError(f"channels must be 'forward' or 'transpose', not {channels}")
        if parallel < 1:
            raise ValueError(f"parallel must be at least 1, not {parallel}")
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, not {lanes}")
        self.weights = weights
        self.in_format = in_format
        self.out_format = out_format
        self.channels = channels
        self.lanes = lanes
        self.rounding = rounding
        self.overflow_mode = overflow
        width = min(dsp_shape) if weight_width is None else weight_width
        self.weight_bound = weight_bound
        self.word_bits = word_bits
        self.weight_format = (constant_format(weights, width) if weight_bound is None
                              else Q.for_range(weight_bound, width))
        self.weight_raw = self.weight_format.quantize(weights)
        if weight_bound is not None:
            # what the model computes with; the hardware is loaded through ``load``
            self.loaded_values = ("weights", "weight_raw", "_weight_integers")
        # Built here, not on first use: the attributes are the core's module key in hierarchical
        # Verilog (cores.shared.module_name), which must not depend on whether reference() ran.
        self._weight_integers = exact_integers(self.weight_raw, self.weight_format.width)
        self.multiplier = Multiplier(in_format.shape, self.weight_format.shape, dsp_shape=dsp_shape,
                                     pipelining=pipelining)
        self.pass_latency = type(self).pass_latency + self.multiplier.latency - 1
        rows, cols = weights.shape
        self.parallel = min(parallel, rows, cols)
        self.padded_shape = (-(-rows // self.parallel) * self.parallel, -(-cols // self.parallel) * self.parallel)
        self.contracts = tuple(self._contract(k) for k in range(len(channels)))
        self.contract = self.contracts[0]

    @property
    def buffer_bits(self):
        """Bits of writable storage: every channel's ping-pong input buffer of ``2 * n_in`` beats of
        ``lanes`` elements.

        The weight banks are constants and not counted (see :attr:`padded_shape`).
        """
        return sum(2 * self.lengths(k)[0] * self.lanes * self.in_format.width for k in range(len(self.channels)))

    @property
    def weight_bits(self):
        """Bits of the stored matrix: ``Rp x Cp`` weights of ``weight_format`` (see :attr:`padded_shape`)."""
        return int(np.prod(self.padded_shape)) * self.weight_format.width

    @property
    def runtime_weights(self):
        """Whether the banks are loaded at run time (``weight_bound``) rather than initialized."""
        return self.weight_bound is not None

    @property
    def weight_layout(self):
        """How the ``load`` segment stores a matrix (:class:`cores.weights.WeightLayout`): one bank
        address (``P`` weights, bank ``b`` element ``b``) a row."""
        return WeightLayout("banks", self.weight_format, parallel=self.parallel, padded_shape=self.padded_shape,
                            word_bits=self.word_bits)

    def lengths(self, channel):
        """``(n_in, n_out)`` of a channel (its index or kind)."""
        rows, cols = self.weights.shape
        return (cols, rows) if self._kind(channel) == "forward" else (rows, cols)

    def accumulator_format(self, channel):
        """The exact format of a channel's sums: product format plus ``ceil(log2(n_in))`` bits."""
        n_in, _ = self.lengths(channel)
        a, w = self.in_format, self.weight_format
        return Q(a.int_bits + w.int_bits + math.ceil(math.log2(n_in)), a.frac_bits + w.frac_bits)

    @property
    def multipliers(self):
        return (self.multiplier,) * (self.parallel * self.lanes * len(self.channels))

    @property
    def memories(self):
        """The ``P`` weight banks, and every channel's ping-pong input buffer of whole beats."""
        rows, cols = self.padded_shape
        banks = Storage(self.weight_format.width, math.ceil(rows * cols / self.parallel), self.weight_bound is None,
                        self.parallel)
        return (banks,) + tuple(Storage(self.in_format.width * self.lanes, 2 * max(self.lengths(k)[0], 1), False)
                                for k in range(len(self.channels)))

    def reference(self, *inputs):
        """Bit-exact model: every channel's raw ``out_format`` results for its raw ``in_format``
        inputs ``x[..., n]``, whole firings of ``n_in`` beats of ``lanes`` elements in stream order
        (beat-major, lane-minor: lane ``s`` is vector stream ``s``); one array per channel (a tuple
        for two), in the same order."""
        if len(inputs) != len(self.channels):
            raise ValueError(f"{len(self.channels)} channels need as many inputs, not {len(inputs)}")
        outputs = tuple(self._channel_reference(k, np.asarray(x)) for k, x in enumerate(inputs))
        return outputs[0] if len(outputs) == 1 else outputs

    def _channel_reference(self, k, x):
        n_in, _ = self.lengths(k)
        matrix = self._weight_integers if self.channels[k] == "forward" else self._weight_integers.T
        # Lanes become rows of their own: (..., firings, lanes, n_in) vectors.
        vectors = x.reshape(*x.shape[:-1], -1, n_in, self.lanes).swapaxes(-1, -2)
        sums = exact_matmul(vectors, self.in_format.width, matrix, self.weight_format.width)
        out = convert_raw(sums, self.accumulator_format(k), self.out_format, rounding=self.rounding,
                          overflow=self.overflow_mode)[0]
        return out.swapaxes(-1, -2).reshape(*x.shape[:-1], -1)

    def channel(self, k):
        """Channel ``k`` as a core of its own (:class:`MatVecChannel`): its ports, contract, cycle
        model and reference."""
        return MatVecChannel(self, k)

    @staticmethod
    def cycles_per_sample(vectors, n_in, n_out, parallel):
        """Cycles a channel of ``n_in`` inputs, ``n_out`` outputs and ``parallel`` multipliers is busy
        with the ``vectors`` vectors of one sample: one firing each, ``ceil(n_out / P)`` passes of
        ``n_in`` steps a firing (``P`` the clamped :attr:`parallel`)."""
        return vectors * n_in * -(-n_out // max(1, min(parallel, n_in, n_out)))

    def _kind(self, channel):
        return self.channels[channel] if isinstance(channel, (int, np.integer)) else channel

    def _contract(self, k):
        n_in, n_out = self.lengths(k)
        writes = tuple(1 + (p // self.parallel) * n_in + self.pass_latency + p % self.parallel for p in range(n_out))
        return TimingContract(reads=(((f"x{k}",), n_in),), writes=writes,
                              cooldown=self.cycles_per_sample(1, n_in, n_out, self.parallel) - n_in)


class MatVecChannel:
    """Channel ``index`` of the :class:`MatVec` (or model) ``core``, seen as a core of its own: a
    node of a design that one channel computes."""

    def __init__(self, core, index):
        self.core, self.index = core, index

    @property
    def inputs(self):
        """Its input port names."""
        return (f"x{self.index}",)

    @property
    def output(self):
        """Its output port name."""
        return f"o{self.index}"

    @property
    def contract(self):
        return self.core.contracts[self.index]

    def cycle_model(self, firings=None):
        """The channel register by register (:class:`MatVecCycles`); it runs for as long as it is fed."""
        return MatVecCycles(self.core, self.index)

    def reference(self, x):
        """The channel's raw outputs for its raw inputs (see :meth:`MatVec.reference`)."""
        return self.core._channel_reference(self.index, np.asarray(x))


class MatVec(ModelledComponent, MatVecModel):
    """``y = W x`` and/or ``y = Wᵀ x`` on streamed vectors, ``W`` held once in block RAM.

    Each channel is output-stationary: ``P`` lanes compute ``P`` output elements at once. For each
    block of ``P`` outputs (a *pass*) the channel walks through the input beats ``j``, one per
    cycle, and lane ``p`` accumulates ``W[row_p, j] * x_s[j]`` at full precision for every sample
    ``s`` of the beat, with one multiplier and one accumulator per sample and the weight read once.
    A finished block is rounded to ``out_format`` once per element and emitted one beat per cycle.

    ``W`` (padded with zeros to ``Rp x Cp``, multiples of ``P``) is stored skewed: element
    ``W[r, c]`` sits in bank ``(r + c) mod P`` at address ``(r // P) * Cp + c``. A forward step reads
    column ``j`` of a block of rows, all banks at the same address; a transposed step reads row ``r``
    of a block of columns, bank ``b`` at ``base + (b - r) mod P``. Either way step ``j`` finds the
    weight of output ``p`` of the block in bank ``(p + j) mod P``. Rather than rotate the bank words
    to the lanes (a wide multiplexer), each lane takes one bank and the accumulators form a ring in
    which a partial sum moves on one lane a step, following its weights from bank to bank; lane
    ``q`` takes bank ``(q + n_in - 1) mod P``, so that after a pass's last step lane ``p`` holds
    output ``p``. Rounding to nearest adds half an output ulp to the start of every sum, so that
    what follows the accumulators only drops bits and saturates. Every channel has its own read port
    on every bank, so two channels fit the two ports of a BRAM.

    Parameters
    ----------
    weights : array of float, shape (R, C)
        The matrix, quantized once to :attr:`weight_format`.
    in_format, out_format : Q
        Formats of the input and output streams.
    channels : tuple of "forward" or "transpose"
        One or two channels. Channel ``k`` computes ``W x`` (``x`` of ``C`` elements, ``y`` of
        ``R``) or ``Wᵀ x`` (``x`` of ``R``, ``y`` of ``C``), independently of the other.
    parallel : int
        Multipliers per channel. Clamped to ``P = min(parallel, R, C)``: no more than the input
        length, so draining a block of ``P`` results one per cycle ends before the next block is
        done ``n_in`` cycles later, and no more than the output length, since further lanes would
        only compute padding. The clamped value is :attr:`parallel`.
    lanes : int
        Elements per beat of every stream: ``lanes`` independent vectors (samples), lane ``s``
        carrying sample ``s``, all multiplied by the same ``W``.
    weight_width : int, optional
        Bits per stored weight; by default the narrower port of ``dsp_shape``, so that a weight
        times an input of the wider port's width is one DSP.
    weight_bound : float, optional
        Runtime weights: the largest magnitude a weight may have, which sets :attr:`weight_format`
        (by default the weights' own largest magnitude does). The banks then have no initial
        contents and are written through the ``load`` port, ``weights`` being only what the model
        (:meth:`reference`) computes with. :attr:`weight_layout` packs a matrix's segment.
    word_bits : int
        Bits of a ``load`` word (:mod:`cores.weights`).
    dsp_shape : (int, int)
        Widths of the signed operands of one DSP multiplier (see :class:`~cores.multiply.Multiplier`).
    pipelining : Pipelining
        Of :class:`~cores.pipelining.Pipelining`, the lanes' products take ``multiplier_inputs``
        (registers at the multiplier, behind the weight and input registers, so that neither the
        weight's nor the broadcast input's route shares the multiply's stage) and ``dsp``; none by
        default.
    rounding, overflow : str
        How each result is brought to ``out_format`` (see :func:`cores.fixed.convert`).

    Ports
    -----
    x{k} : In(stream.Signature(ArrayLayout(in_format.shape, lanes)))
        Channel ``k``'s input vectors, element 0 first; beat ``j`` holds element ``j`` of every
        lane's vector.
    o{k} : Out(stream.Signature(ArrayLayout(out_format.shape, lanes)))
        Channel ``k``'s output vectors, element 0 first, lane by lane like the inputs.
    overflow : Out(1)
        Sticky: set once any emitted result of any channel did not fit ``out_format``.
    load : In(cores.weights.load_signature(word_bits))
        Only with ``weight_bound``: the banks' contents, one bank address (``P`` weights, one per
        bank, in ``ceil(P / (word_bits // weight_width))`` words) after another, addresses in
        order. Words may come only while no channel is computing.

    Timing
    ------
    Per channel, with ``n_in``/``n_out`` its input/output lengths in beats (whatever ``lanes``)
    and ``passes = ceil(n_out / P)``:
    a firing reads ``n_in`` beats; output ``b * P + p`` (pass ``b``, lane ``p``) becomes valid
    ``1 + b * n_in + pass_latency + p`` cycles after the last beat (latency ``pass_latency + 1``;
    ``pass_latency`` is 6, plus the product's stages beyond one). The first pass runs while
    the vector loads: its step ``j`` issues the cycle after beat ``j`` was written to the input
    buffer (the buffer's read port is not transparent: a read in the cycle of the write gives the
    old word), so its last step issues the cycle after the last beat, whatever the gaps between
    beats. Passes ``1..`` reuse the buffered vector, one step per cycle. ``cooldown = (passes - 1)
    * n_in``, so the initiation interval is ``passes * n_in`` cycles per firing: the multipliers
    never idle while inputs keep up, and a firing's first step issues after the last step of the
    one before. The next firing loads into the other half of a ping-pong input buffer while the
    current one computes; a half is loaded again once its last pass has issued. Under
    back-pressure the whole compute pipeline of the channel holds (accumulators included) until
    its output buffer has room, while loading goes on. The output register has a skid register:
    an element that leaves the output buffer while ``o{k}`` is held waits there, and the buffer
    drains only while it is empty, so that the stall is a function of the core's registers, not
    of ``o{k}.ready``, and ``x{k}.ready`` is one LUT of registers.

    Resources
    ---------
    ``P * lanes`` multipliers (``in_format.width x weight_width``, each a :attr:`multiplier` of
    ``multiplier.dsps`` DSP slices) and ``P * lanes`` accumulators per channel;
    ``Rp * Cp * weight_width`` bits of weight storage in ``P`` banks, shared by all channels and
    lanes; a ``2 * n_in``-beat input buffer (``lanes * in_format.width`` bits a beat) and
    ``P * lanes`` accumulator-wide output registers per channel; ``lanes`` saturation units and
    ``2 * lanes`` output-wide registers (output and skid) per channel; ``P`` bank offsets of
    ``log2(P)`` bits per transposed channel.

    Error bound
    -----------
    Each output is ``sum_j Wq[r, j] * x[j]`` computed exactly (accumulator of the product width plus
    ``ceil(log2(n_in))`` bits) and rounded once, so it is within 1/2 ulp of ``out_format`` of the
    exact product with the quantized weights (below 1 ulp with ``rounding="truncate"``), unless it
    saturates. Against the real weights add ``sum_j |x[j]| * 2**-(weight_format.frac_bits + 1)``.
    """

    def members(self):
        members = {}
        for k in range(len(self.channels)):
            members[f"x{k}"] = In(lanes_signature(self.in_format, self.lanes))
            members[f"o{k}"] = Out(lanes_signature(self.out_format, self.lanes))
        members["overflow"] = Out(1)
        if self.weight_bound is not None:
            members["load"] = In(load_signature(self.word_bits))
        return members

    def _bank_contents(self):
        """``contents[b, a]``: word ``a`` of bank ``b``, raw weights (int64)."""
        return skewed_banks(self.weight_raw, self.parallel, self.padded_shape)

    def elaborate(self, platform):
        m = Module()
        P = self.parallel
        depth = self.padded_shape[0] * self.padded_shape[1] // P
        loaded = self.weight_bound is not None
        banks = _WeightBanks(None if loaded else self._bank_contents(), P, depth, self.weight_format.shape,
                             self.channels, self.word_bits if loaded else None)
        kind = "loaded_" if loaded else ""
        m.submodules.banks = Shared(banks, module_name(
            f"matvec_{kind}banks_p{P}_d{depth}_w{self.weight_format.width}", banks))
        if loaded:
            wiring.connect(m, wiring.flipped(self.load), banks.load)
        overflowed = [flag for k in range(len(self.channels)) for flag in self._elaborate_channel(m, k, banks)]
        with m.If(Cat(overflowed).any()):
            m.d.sync += self.overflow.eq(1)
        return m

    def _elaborate_channel(self, m, k, banks):
        """Build channel ``k``; return its one-cycle overflow flags, one per lane.

        A channel is three parts, each with its counterpart in :class:`MatVecCycles`: the loader
        writes the input beats into a ping-pong buffer; the sequencer walks each loaded vector
        pass by pass, step by step, reading its weights and beats; the drain feeds each step to the
        lanes, takes each finished pass out of them one element per cycle, and stops the sequencer
        and the lanes (``run``) while it has no room for the next.
        """
        signal = functools.partial(_channel_signal, k)
        loader = self._elaborate_loader(m, k, signal)
        run = signal(1, "run", init=1)  # the compute pipeline advances; the drain drives it
        step = self._elaborate_sequencer(m, k, signal, loader, banks, run)
        return self._elaborate_drain(m, k, signal, banks, step, run)

    def _bias(self, k):
        """Rounding to nearest adds half an output ulp: the accumulators start from it, so that the
        output stage only drops bits and saturates, with no carry chain after the output buffer."""
        shift = self.accumulator_format(k).frac_bits - self.out_format.frac_bits
        return 1 << (shift - 1) if self.rounding == "nearest" and shift > 0 else 0

    def _elaborate_lanes(self, m, k):
        """Stages 2 to 5 of channel ``k``, in the lanes: 2, the weight registers; 3, products, after
        ``multiplier.latency`` register stages (one unless pipelined or split); 4, accumulators; 5,
        the output buffer, whose head is lane 0's slot."""
        n_in, _ = self.lengths(k)
        acc_format, bias = self.accumulator_format(k), self._bias(k)
        largest_sum = n_in * 2 ** (self.in_format.width + self.weight_format.width - 2) + bias
        acc_shape = signed(max(acc_format.width, largest_sum.bit_length() + 1))
        lanes = _Lanes(self.parallel, self.weight_format.shape, self.in_format.shape, acc_shape, self.multiplier,
                       self.lanes, bias)
        widths = f"x{self.in_format.width}_w{self.weight_format.width}_a{acc_shape.width}"
        m.submodules[f"lanes{k}"] = Shared(lanes, module_name(f"matvec_lanes_p{self.parallel}{_tag(self.lanes)}_{widths}",
                                                              lanes))
        return lanes

    def _elaborate_loader(self, m, k, signal):
        """The loader of channel ``k``: each input beat into the ping-pong input buffer of whole
        beats, half 0 at addresses ``[0, n_in)`` and half 1 at ``[n_in, 2 n_in)``, a vector per
        half, into a half whose previous vector has finished its last pass. Returns
        :class:`_Loader`."""
        n_in, _ = self.lengths(k)
        cooldown = self.contracts[k].cooldown
        x_port = getattr(self, f"x{k}")
        xbuf = Memory(shape=_samples(self.in_format.shape, self.lanes), depth=2 * n_in, init=[])
        m.submodules[f"xbuf{k}"] = xbuf
        x_write, x_read = xbuf.write_port(), xbuf.read_port()
        full = signal(2, "full")  # half holds a loaded vector whose compute has not finished
        load_half = signal(1, "load_half")
        load_index = signal(range(n_in + 1), "load_index")
        load_addr = signal(range(2 * n_in), "load_addr")
        cool = signal(range(cooldown + 1), "cool")  # keeps the first beat to the contract's cooldown
        # `load_index != 0 | cool == 0` as a register, so that `ready` is one LUT of registers.
        may_start = signal(1, "may_start", init=1)
        m.d.comb += x_port.ready.eq(~full.bit_select(load_half, 1) & may_start)
        accept = x_port.valid & x_port.ready
        m.d.comb += [x_write.addr.eq(load_addr), x_write.data.eq(x_port.payload), x_write.en.eq(accept)]
        with m.If(cool != 0):
            m.d.sync += cool.eq(cool - 1)
        with m.If(cool == 1):
            m.d.sync += may_start.eq(1)
        with m.If(accept):
            m.d.sync += load_addr.eq(Mux(load_addr == 2 * n_in - 1, 0, load_addr + 1))
            with m.If(load_index == n_in - 1):
                m.d.sync += [load_index.eq(0), load_half.eq(~load_half), cool.eq(cooldown),
                             full.bit_select(load_half, 1).eq(1), may_start.eq(cooldown == 0)]
            with m.Else():
                m.d.sync += [load_index.eq(load_index + 1), may_start.eq(1)]
        return _Loader(x_read, full, load_half, load_index)

    def _elaborate_sequencer(self, m, k, signal, loader, banks, run):
        """The sequencer of channel ``k``: pass ``block``, input beat ``step``, one step per cycle
        while ``run`` and the step's beat is loaded. Stage 1 reads the step's weights and beat, and
        its control follows its data through the lanes' stages. The last pass of a vector frees its
        half of the input buffer. Returns :class:`_Step`: the beat the lanes register and multiply
        (stage 1's read) and the control of the step their accumulators take (stage 3), with its
        value in the next cycle."""
        transpose = self.channels[k] == "transpose"
        P = self.parallel
        Rp, Cp = self.padded_shape
        depth = Rp * Cp // P
        n_in, n_out = self.lengths(k)
        passes = -(-n_out // P)
        full = loader.full
        comp_half = signal(1, "comp_half")
        step = signal(range(n_in + 1), "step")
        block = signal(range(passes + 1), "block")
        pass_base = signal(range(depth), "pass_base")
        w_addr = signal(range(depth), "w_addr")  # forward: block*Cp + step; transpose: block*P + (step//P)*Cp
        x_addr = signal(range(2 * n_in), "x_addr")
        # The first pass follows the loading: step j reads beat j from the cycle after its write
        # (the read port is not transparent), from the half being loaded or a loaded one.
        issue = signal(1, "issue")
        loaded = full.bit_select(comp_half, 1) | ((loader.half == comp_half) & (loader.index > step))
        m.d.comb += issue.eq(run & loaded)
        last_step, last_block = step == n_in - 1, block == passes - 1
        if transpose:
            # Bank b reads at `w_addr + (b - step) mod P`. The offsets are registers that follow
            # the step, so that an address is one addition.
            offsets = [signal(range(P), f"offset{b}_", init=b) for b in range(P)]
            with m.If(issue):
                m.d.sync += [offset.eq(Mux(last_step, b, Mux(offset == 0, P - 1, offset - 1)))
                             for b, offset in enumerate(offsets)]
            next_w_addr = w_addr + Mux(offsets[-1] == 0, Cp, 0)  # after row P - 1 (mod P): the next P rows
        else:
            next_w_addr = w_addr + 1
        with m.If(issue):
            with m.If(last_step):
                m.d.sync += step.eq(0)
                with m.If(last_block):
                    m.d.sync += [block.eq(0), pass_base.eq(0), w_addr.eq(0), x_addr.eq(Mux(comp_half, 0, n_in)),
                                 comp_half.eq(~comp_half), full.bit_select(comp_half, 1).eq(0)]
                with m.Else():
                    next_base = pass_base + (P if transpose else Cp)
                    m.d.sync += [block.eq(block + 1), pass_base.eq(next_base), w_addr.eq(next_base),
                                 x_addr.eq(Mux(comp_half, n_in, 0))]
            with m.Else():
                m.d.sync += [step.eq(step + 1), x_addr.eq(x_addr + 1), w_addr.eq(next_w_addr)]

        # Stage 1: memory reads.
        addr = getattr(banks, f"addr{k}")
        if transpose:
            m.d.comb += [addr[b].eq(w_addr + offset) for b, offset in enumerate(offsets)]
        else:
            m.d.comb += addr.eq(w_addr)
        m.d.comb += [getattr(banks, f"en{k}").eq(run), loader.read.addr.eq(x_addr), loader.read.en.eq(run)]
        valid1, first1, last1, last_block1 = (signal(1, n) for n in ("valid1_", "first1_", "last1_", "last_block1_"))
        valid2, first2, last2, last_block2 = (signal(1, n) for n in ("valid2_", "first2_", "last2_", "last_block2_"))
        control3 = Cat(valid2, first2, last2, last_block2)
        for stage in range(self.multiplier.latency):
            delayed = signal(len(control3), f"control3_{stage}_")
            with m.If(run):
                m.d.sync += delayed.eq(control3)
            control3, before3 = delayed, control3
        valid3, first3, last3, last_block3 = (control3[bit] for bit in range(4))
        with m.If(run):
            m.d.sync += [valid1.eq(issue), first1.eq(step == 0), last1.eq(last_step), last_block1.eq(last_block)]
            m.d.sync += [valid2.eq(valid1), first2.eq(first1), last2.eq(last1), last_block2.eq(last_block1)]
        return _Step(loader.read.data, valid3, first3, last3, last_block3, before3[0], before3[1])

    def _elaborate_drain(self, m, k, signal, banks, step, run):
        """The drain of channel ``k``. The lanes take the sequencer's ``step``; stage 5, their
        output buffer, takes a finished pass and drains one element per cycle while the skid
        register is empty; stage 6 saturates it into the output register, or into the skid
        register in a cycle the output register holds. So ``move``, and the stall of the whole
        pipeline (``run``) with it, is a function of registers, not of the consumer's ready.
        Returns the one-cycle overflow flags, one per lane."""
        P = self.parallel
        n_in, n_out = self.lengths(k)
        passes = -(-n_out // P)
        lanes = self._elaborate_lanes(m, k)
        o_port = getattr(self, f"o{k}")
        finished4, last_block4 = signal(1, "finished4_"), signal(1, "last_block4_")  # a finished pass in the accumulators
        with m.If(run):
            m.d.sync += last_block4.eq(step.last_block)
        pending_count = signal(range(P + 1), "pending_count")
        # `pending_count != 0` and `== 1` as registers: `move` and `load` are one LUT of registers.
        pending_any, pending_one = signal(1, "pending_any"), signal(1, "pending_one")
        skid_valid = signal(1, "skid_valid")
        skid = signal(o_port.payload.shape(), "skid")
        move = pending_any & ~skid_valid
        load = finished4 & (~pending_any | (pending_one & ~skid_valid))
        out_free = ~o_port.valid | o_port.ready
        # `run` enables every register of the compute pipeline, so it is a register too, set from
        # the next values of what decides it: `~finished4 | room`.
        finished4_next, skid_next = signal(1, "finished4_next_"), signal(1, "skid_next")
        pending_next = signal(range(P + 1), "pending_next")
        m.d.comb += [finished4_next.eq(Mux(run, step.valid & step.last, finished4)),
                     skid_next.eq(~out_free & (skid_valid | move)),
                     pending_next.eq(Mux(load, Mux(last_block4, n_out - (passes - 1) * P, P), pending_count - move))]
        room_next = (pending_next == 0) | ((pending_next == 1) & ~skid_next)
        run_next = ~finished4_next | room_next
        m.d.sync += [finished4.eq(finished4_next), pending_count.eq(pending_next), skid_valid.eq(skid_next),
                     pending_any.eq(pending_next != 0), pending_one.eq(pending_next == 1), run.eq(run_next)]
        # Step j finds the weight of output p in bank (p + j) mod P, and the accumulators are a ring
        # that moves each partial sum on one lane a step, so lane q takes bank (q + n_in - 1) mod P:
        # after a pass's last step lane p holds output p, and no lane needs a multiplexer to follow
        # the skew.
        rotation = (n_in - 1) % P
        m.d.comb += [lanes.banks[q].eq(getattr(banks, f"data{k}")[(q + rotation) % P]) for q in range(P)]
        # Each group of lanes registers the drain's control for itself, from its next-cycle value,
        # and the step its accumulators take, from the stage before when it runs: no control net
        # reaches every lane, each is a register where it is used, and a step's control crosses the
        # channel from a register to a register.
        control = lanes.control_next
        m.d.comb += [lanes.x.eq(step.x), control.run.eq(run_next), control.shift.eq((pending_next != 0) & ~skid_next),
                     control.load.eq(finished4_next & room_next),
                     lanes.step_before.valid.eq(step.valid_before), lanes.step_before.first.eq(step.first_before)]
        saturated = [_saturate(head, self.accumulator_format(k), self.out_format, self.overflow_mode)
                     for head in _each(lanes.head)]
        with m.If(out_free):
            m.d.sync += o_port.valid.eq(skid_valid | move)
            m.d.sync += [o_port.payload[s].eq(Mux(skid_valid, skid[s], value))
                         for s, (value, _) in enumerate(saturated)]
        with m.Elif(move):
            m.d.sync += [skid[s].eq(value) for s, (value, _) in enumerate(saturated)]
        return [move & overflowed for _, overflowed in saturated]


class _Loader(NamedTuple):
    """What a channel's loader gives its sequencer: the input buffer's read port, which halves are
    ``full``, and the ``half`` being loaded and the ``index`` of its next beat."""

    read: object
    full: Signal
    half: Signal
    index: Signal


class _Step(NamedTuple):
    """A step of a channel's sequencer on its way through the lanes: its beat ``x`` (stage 1's
    read), and at stage 3 whether it is ``valid``, the ``first`` or ``last`` step of its pass, and
    whether the pass is its vector's ``last_block``; ``valid_before`` and ``first_before`` are the
    registers of the stage before, which ``valid`` and ``first`` take in a cycle that runs."""

    x: Signal
    valid: object
    first: object
    last: object
    last_block: object
    valid_before: object
    first_before: object


def _channel_signal(k, shape, name, **kwargs):
    """A signal of channel ``k``, named ``{name}{k}``."""
    return Signal(shape, name=f"{name}{k}", **kwargs)


class MatVecCycles:
    """Channel ``channel`` of :class:`MatVec`, register by register (tokens are not tracked): its
    :class:`~cores.contract.CycleModel`.

    Its three parts are those of the hardware (:meth:`MatVec._elaborate_channel`): the
    :class:`_LoaderCycles`, the :class:`_SequencerCycles` and the :class:`_DrainCycles`.
    ``out_valid`` is the output register's valid bit.
    """

    def __init__(self, core, channel):
        self.port = f"x{channel}"
        n_in, n_out = core.lengths(channel)
        passes = -(-n_out // core.parallel)
        self.loader = _LoaderCycles(n_in, core.contracts[channel].cooldown)
        self.sequencer = _SequencerCycles(n_in, passes, 2 + core.multiplier.latency)
        self.drain = _DrainCycles(n_out, core.parallel, passes)

    @property
    def out_valid(self):
        return self.drain.out_valid

    def ready(self, valid, out_ready):
        return (self.port,) if valid[self.port] and self.loader.ready else ()

    def clock(self, taken, out_ready):
        run, move, room = self.drain.stall()
        issue = run and self.loader.holds(self.sequencer.half, self.sequencer.step)
        finished = self.sequencer.stages[-1]
        freed = self.sequencer.clock(run, issue)
        self.loader.clock(taken, freed)
        self.drain.clock(run, move, room, finished, out_ready)


class _LoaderCycles:
    """A channel's loader: which halves of the input buffer are ``full``, the ``half`` being loaded,
    the ``index`` of its next beat, and the ``cool`` cycles before a vector's first beat."""

    def __init__(self, n_in, cooldown):
        self.n_in, self.cooldown = n_in, cooldown
        self.full = [False, False]
        self.half = self.index = self.cool = 0

    @property
    def ready(self):
        return not self.full[self.half] and (self.index != 0 or self.cool == 0)

    def holds(self, half, step):
        """Whether beat ``step`` of ``half`` is in the buffer, readable from this cycle on."""
        return self.full[half] or (self.half == half and self.index > step)

    def clock(self, taken, freed):
        """A beat was ``taken``; the sequencer finished with half ``freed`` (or None)."""
        if self.cool:
            self.cool -= 1
        if taken:
            if self.index == self.n_in - 1:
                self.full[self.half] = True
                self.index, self.half, self.cool = 0, 1 - self.half, self.cooldown
            else:
                self.index += 1
        if freed is not None:
            self.full[freed] = False


class _SequencerCycles:
    """A channel's sequencer: the ``half`` of the input buffer it reads, its pass ``block`` and
    ``step``, and ``stages``, the ``(valid, last step, last block)`` control of the steps in stages
    1, 2 and the multiplier's registers, the last the step the accumulators take."""

    def __init__(self, n_in, passes, stages):
        self.n_in, self.passes = n_in, passes
        self.half = self.step = self.block = 0
        self.stages = [(False, False, False)] * stages

    def clock(self, run, issue):
        """Advance one cycle; return the half of the input buffer a vector's last step frees, or None."""
        last_step, last_block = self.step == self.n_in - 1, self.block == self.passes - 1
        freed = None
        if issue:
            if last_step:
                self.step = 0
                if last_block:
                    freed, self.block, self.half = self.half, 0, 1 - self.half
                else:
                    self.block += 1
            else:
                self.step += 1
        if run:
            self.stages = [(issue, last_step, last_block)] + self.stages[:-1]
        return freed


class _DrainCycles:
    """A channel's drain: a ``finished`` pass in the accumulators (and whether it is the vector's
    last), the ``pending`` elements of the output buffer, the output and skid registers."""

    def __init__(self, n_out, parallel, passes):
        self.parallel = parallel
        self.last_pass = n_out - (passes - 1) * parallel
        self.finished, self.finished_last_block = False, False
        self.pending = 0
        self.out_valid = self.skid_valid = False

    def stall(self):
        """``(run, move, room)``: whether the pipeline advances, an element leaves the output buffer,
        and the output buffer has room for a finished pass."""
        move = self.pending != 0 and not self.skid_valid
        room = self.pending == 0 or (self.pending == 1 and move)
        return not self.finished or room, move, room

    def clock(self, run, move, room, finished, out_ready):
        """Advance one cycle; ``finished`` is the sequencer's step in the accumulators' stage."""
        finished_now, finished_last = self.finished, self.finished_last_block
        if run:
            valid, last, last_block = finished
            self.finished, self.finished_last_block = valid and last, last_block
        if move:
            self.pending -= 1
        if finished_now and room:
            self.pending = self.last_pass if finished_last else self.parallel
        if not self.out_valid or out_ready:
            self.out_valid, self.skid_valid = self.skid_valid or move, False
        elif move:
            self.skid_valid = True


class _WeightBanks(wiring.Component):
    """The ``P`` banks of ``depth`` words of a :class:`MatVec`, each with one synchronous read port
    per channel: ``addr{k}`` (one address for all banks on a forward channel, one per bank on a
    transposed one), ``en{k}``, and ``data{k}[b]`` a cycle later.

    The banks hold ``contents[b]`` from the start, or, with ``word_bits`` (runtime weights), what
    comes on the ``load`` port: each of its words brings the elements of one address of some of the
    banks (:func:`cores.weights.segment_writes`). A write takes channel 0's port of the bank, whose
    address then follows the load's, so a bank is still one memory of two ports (a BRAM's two):
    the design loads weights only while no channel reads them.
    """

    def __init__(self, contents, parallel, depth, shape, channels, word_bits=None):
        self.contents = contents
        self.parallel = parallel
        self.depth = depth
        self.shape = shape
        self.channels = channels
        members = {}
        for k, kind in enumerate(channels):
            address = range(depth)
            members[f"addr{k}"] = In(data.ArrayLayout(address, parallel) if kind == "transpose" else address)
            members[f"en{k}"] = In(1)
            members[f"data{k}"] = Out(data.ArrayLayout(shape, parallel))
        if word_bits is not None:
            members["load"] = In(load_signature(word_bits))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        loaded = self.contents is None
        if loaded:
            row, enables, words = segment_writes(m, self.load, self.parallel, Shape.cast(self.shape).width, self.depth)
        for b in range(self.parallel):
            init = [] if loaded else self.contents[b].tolist()
            bank = m.submodules[f"bank{b}"] = Memory(shape=self.shape, depth=self.depth, init=init)
            for k, kind in enumerate(self.channels):
                port = bank.read_port()
                addr = getattr(self, f"addr{k}")
                addr = addr[b] if kind == "transpose" else addr
                if loaded and k == 0:
                    addr = Mux(self.load.valid, row, addr)
                    write = bank.write_port()
                    m.d.comb += [write.addr.eq(addr), write.en.eq(enables[b]), write.data.eq(words[b])]
                m.d.comb += [port.addr.eq(addr), port.en.eq(getattr(self, f"en{k}")),
                             getattr(self, f"data{k}")[b].eq(port.data)]
        return m


_LANE_CONTROL = data.StructLayout({
    "run": 1,         # the pipeline advances: operand and product registers load
    "accumulate": 1,  # the accumulator takes the product (a valid step) ...
    "first": 1,       # ... in place of its sum (a pass's first step)
    "shift": 1,       # every output slot takes the one behind it
    "load": 1,        # the output slots take the accumulators (a finished pass), over a shift
})

#: The drain's part of the lanes' control, which a group of lanes registers from its next value.
_DRAIN_CONTROL = data.StructLayout({"run": 1, "shift": 1, "load": 1})

#: The step the accumulators take: whether it is valid and the first of its pass.
_STEP_CONTROL = data.StructLayout({"valid": 1, "first": 1})


def _saturate(value, src, dst, overflow):
    """``convert(value, src, dst, rounding="truncate", overflow=overflow)``, the range test made
    on the bits above ``dst``'s (a tree of LUTs) instead of by comparisons (carry chains)."""
    shift = src.frac_bits - dst.frac_bits
    value = value.as_signed() >> shift if shift > 0 else value.as_signed() << -shift
    if len(value) <= dst.width:
        return value, Const(0)
    above = value[dst.width - 1:]
    overflowed = ~(above.all() | ~above.any())
    if overflow == "saturate":
        value = Mux(overflowed, Mux(value[-1], dst.min_raw, dst.max_raw), value)
    return value[:dst.width].as_signed(), overflowed


def _samples(shape, samples):
    """The shape of ``samples`` values of ``shape`` side by side: ``shape`` itself for one, so that
    one-lane parts keep the ports, and so the module keys, that they had before lanes."""
    return shape if samples == 1 else data.ArrayLayout(shape, samples)


def _each(value):
    """The values side by side in ``value``, of a :func:`_samples` shape."""
    layout = value.shape()
    return [value[s] for s in range(layout.length)] if isinstance(layout, data.ArrayLayout) else [value]


def _tag(samples):
    """The part of a module name that tells its lane count: none for one lane."""
    return "" if samples == 1 else f"_l{samples}"


class _Lane(wiring.Component):
    """One lane: weight register, and for each of ``samples`` samples a pipelined product of the
    weight with its ``x``, an accumulator and an output slot in ``pending``, which takes
    ``pending_in`` on a shift.

    The accumulators of a channel's lanes are a ring: a step adds the lane's product to the partial
    sum of the lane before it (``acc_in``), so that a partial sum moves on one lane a step, as the
    weights of its output element move on one bank (see :class:`MatVec`); a pass's first step
    starts from ``bias`` instead.
    """

    def __init__(self, weight_shape, x_shape, acc_shape, multiplier, samples, bias):
        self.multiplier = multiplier
        self.bias = bias
        slot = _samples(acc_shape, samples)
        super().__init__({"weight": In(weight_shape), "x": In(_samples(x_shape, samples)),
                          "control": In(_LANE_CONTROL), "acc_in": In(slot), "acc": Out(slot),
                          "pending_in": In(slot), "pending": Out(slot)})

    def elaborate(self, platform):
        m = Module()
        control = self.control
        # Data registers, with no reset (the sequencer's valid bits go with them).
        weight = Signal.like(self.weight, name="weight2", reset_less=True)
        with m.If(control.run):
            m.d.sync += weight.eq(self.weight)
        slots = list(zip(_each(self.x), _each(self.acc_in), _each(self.acc), _each(self.pending_in),
                         _each(self.pending)))
        for s, (x, acc_in, acc_out, pending_in, pending_out) in enumerate(slots):
            suffix = "" if len(slots) == 1 else f"_{s}"
            acc = Signal.like(acc_out, name=f"acc{suffix}", reset_less=True)
            pending = Signal.like(pending_out, name=f"pending{suffix}", reset_less=True)
            m.d.comb += [acc_out.eq(acc), pending_out.eq(pending)]
            product = self.multiplier.build(m, x, weight, enable=control.run, name=f"product3{suffix}")
            with m.If(control.accumulate):
                m.d.sync += acc.eq(Mux(control.first, self.bias, acc_in) + product)
            with m.If(control.shift):
                m.d.sync += pending.eq(pending_in)
            with m.If(control.load):
                m.d.sync += pending.eq(acc)
        return m


class _LaneGroup(wiring.Component):
    """``size`` consecutive lanes of ``samples`` samples each: their accumulators a segment of the
    ring from ``acc_in`` (into the first lane) to ``acc`` (the last lane's), their output slots one
    shift register from ``pending_in`` (into the last lane's slot, ``tail``) to ``head`` (the first
    lane's slot)."""

    def __init__(self, size, weight_shape, x_shape, acc_shape, multiplier, samples, bias):
        self.size = size
        self.shapes = (weight_shape, x_shape, acc_shape)
        self.multiplier = multiplier
        self.bias = bias
        slot = _samples(acc_shape, samples)
        super().__init__({"weights": In(data.ArrayLayout(weight_shape, size)), "x": In(_samples(x_shape, samples)),
                          "control_next": In(_DRAIN_CONTROL), "step_before": In(_STEP_CONTROL),
                          "acc_in": In(slot), "acc": Out(slot), "pending_in": In(slot), "head": Out(slot),
                          "tail": Out(slot)})

    def elaborate(self, platform):
        m = Module()
        weight_shape, x_shape, acc_shape = self.shapes
        samples = len(_each(self.x))
        # The group's own copies of the lanes' control, of the step they take and of the beat they
        # multiply (stage 2), so that no net of them spans every lane of the channel. The step is
        # the channel's stage-3 register again: it loads from the stage before while the
        # pipeline runs, as that register does. ``keep`` stops synthesis from merging the groups'
        # identical copies back into one register (yosys opt_merge did, and the merged control
        # drove every lane of the channel across the ECP5 at 7.3 ns): boards.plan.KEEP_REGISTERS
        # carries the attribute to the flip-flops.
        drain = Signal(_DRAIN_CONTROL, init={"run": 1}, attrs={"keep": 1})
        m.d.sync += drain.eq(self.control_next)
        step = Signal(_STEP_CONTROL, attrs={"keep": 1})
        x = Signal.like(self.x, name="x2", reset_less=True, attrs={"keep": 1})
        with m.If(drain.run):
            m.d.sync += [step.eq(self.step_before), x.eq(self.x)]
        control = Signal(_LANE_CONTROL)
        m.d.comb += [control.run.eq(drain.run), control.accumulate.eq(drain.run & step.valid),
                     control.first.eq(step.first), control.shift.eq(drain.shift), control.load.eq(drain.load)]
        lanes = []
        for p in range(self.size):
            lane = _Lane(weight_shape, x_shape, acc_shape, self.multiplier, samples, self.bias)
            name = f"matvec_lane{_tag(samples)}_x{x_shape.width}_w{weight_shape.width}_a{acc_shape.width}"
            m.submodules[f"lane{p}"] = Shared(lane, module_name(name, lane))
            m.d.comb += [lane.weight.eq(self.weights[p]), lane.x.eq(x), lane.control.eq(control)]
            lanes.append(lane)
        for lane, behind in zip(lanes, lanes[1:]):
            m.d.comb += [lane.pending_in.eq(behind.pending), behind.acc_in.eq(lane.acc)]
        m.d.comb += [lanes[-1].pending_in.eq(self.pending_in), self.head.eq(lanes[0].pending),
                     self.tail.eq(lanes[-1].pending), lanes[0].acc_in.eq(self.acc_in), self.acc.eq(lanes[-1].acc)]
        return m


class _Lanes(wiring.Component):
    """A channel's ``parallel`` lanes of ``samples`` samples each, lane ``p`` fed bank word
    ``banks[p]``, sharing ``x`` (stage 1's read, which each group registers) and the control
    (the drain's ``control_next``, next cycle's, and the step's ``step_before``, the stage
    before the accumulators', which each group registers); ``head`` is lane 0's output
    slot. The accumulators are one ring, lane 0 after the last lane; a pass's first step starts
    each from ``bias``.

    The lanes come in groups of about ``sqrt(parallel)``: hierarchical Verilog then converts about
    ``2 sqrt(parallel)`` instances (the groups here, the lanes of a group) instead of
    ``parallel``, and wiring an instance's ports is most of the time a small module takes.
    """

    def __init__(self, parallel, weight_shape, x_shape, acc_shape, multiplier, samples, bias):
        self.parallel = parallel
        self.shapes = (weight_shape, x_shape, acc_shape)
        self.multiplier = multiplier
        self.bias = bias
        super().__init__({"banks": In(data.ArrayLayout(weight_shape, parallel)),
                          "x": In(_samples(x_shape, samples)), "control_next": In(_DRAIN_CONTROL),
                          "step_before": In(_STEP_CONTROL), "head": Out(_samples(acc_shape, samples))})

    def elaborate(self, platform):
        m = Module()
        weight_shape, x_shape, acc_shape = self.shapes
        samples = len(_each(self.x))
        size = math.isqrt(self.parallel - 1) + 1  # ceil(sqrt(parallel))
        groups = []
        for g, first in enumerate(range(0, self.parallel, size)):
            group = _LaneGroup(min(size, self.parallel - first), weight_shape, x_shape, acc_shape, self.multiplier,
                               samples, self.bias)
            name = (f"matvec_lanegroup_g{group.size}{_tag(samples)}_x{x_shape.width}_w{weight_shape.width}"
                    f"_a{acc_shape.width}")
            m.submodules[f"group{g}"] = Shared(group, module_name(name, group))
            m.d.comb += [group.weights.eq(Cat(self.banks[first + p] for p in range(group.size))),
                         group.x.eq(self.x), group.control_next.eq(self.control_next),
                         group.step_before.eq(self.step_before)]
            groups.append(group)
        for group, behind in zip(groups, groups[1:]):
            m.d.comb += [group.pending_in.eq(behind.head), behind.acc_in.eq(group.acc)]
        # The last slot has nothing behind it: it holds while the others shift.
        m.d.comb += [groups[-1].pending_in.eq(groups[-1].tail), self.head.eq(groups[0].head),
                     groups[0].acc_in.eq(groups[-1].acc)]
        return m

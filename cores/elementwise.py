"""Element-wise arithmetic cores: add, sub, mul, neg, multiply by a constant, fused multiply-add.

All of them share one pipeline. In each beat they take one token from every input stream (lane by
lane), compute the exact result at full precision in the first register stage, and round it to the
output format in the second. A product too wide for one DSP slice is split into DSP-sized partial
products (:class:`~cores.multiply.Multiplier`), whose adder tree adds register stages before the
rounding; the optional registers of :class:`~cores.pipelining.Pipelining` add stages to a product
(its input registers, the addend of a multiply-add in a stage of its own) and round it in one stage
and saturate it in the next, as they do a sum or a negation that is rounded half up. The whole
pipeline holds its contents while the output is back-pressured, so no beat is lost or repeated.
"""

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .contract import ContractTiming, TimingContract
from .fixed import Q, convert, convert_raw, exact_integers
from .model import ModelledComponent, Storage
from .multiply import DSP48E2, Multiplier
from .pipelining import Pipelining
from .ports import lanes_signature
from .weights import WORD_BITS, WeightLayout, load_signature, segment_writes

__all__ = ["Add", "Sub", "Mul", "Neg", "Scale", "MulAdd", "AddConst", "MulConst", "constant_format"]


def constant_format(values, width):
    """The ``width``-bit format that holds every value of ``values`` with the most fractional bits."""
    return Q.for_range(float(np.max(np.abs(values))) if np.size(values) else 0.0, width)


class _Elementwise(ContractTiming):
    """The model of an element-wise core: its formats, contract, exact arithmetic and resources
    (:meth:`prepare` and :meth:`constant_operand` build hardware for the core's elaboration).

    Parameters
    ----------
    in_formats : dict of str to Q
        Input stream names and their formats.
    out_format : Q
        Format of the output stream ``o``.
    lanes : int
        Elements per beat, on every stream.
    rounding, overflow : str
        How the full-precision result is brought to ``out_format`` (see :func:`cores.fixed.convert`).
    dsp_shape : (int, int)
        Only for the cores whose result is a product (Mul, MulAdd, Scale, MulConst): the signed
        port widths of the device's DSP multiplier that the product is split for
        (:class:`~cores.multiply.Multiplier`).
    pipelining : Pipelining
        The optional registers (:class:`~cores.pipelining.Pipelining`, all of them by default).
        ``multiplier_inputs`` registers the operands of a product, ``post_multiply_add`` adds
        MulAdd's addend in a stage of its own and rounds the result in one stage and saturates it
        in the next: a product always, a sum or a negation only where its rounding has a carry
        (``rounding="nearest"`` to fewer fractional bits than the exact result's).

    Timing
    ------
    Initiation interval 1: ``TimingContract.pipeline(inputs, latency)``. Latency 2 for the cores
    without a product, 3 with ``post_multiply_add`` where they round. A core with a product takes
    ``multiplier.latency`` stages for it, then one to round it, and one more to saturate it with
    ``post_multiply_add``: latency 4 (MulAdd 5) with every optional register and a product that
    fits one DSP, 2 with none of them; a product split over two to four DSPs adds 1, over five to
    eight 2.
    """

    latency = 2

    multiplier = None
    """The :class:`~cores.multiply.Multiplier` of a core whose result is a product (see :meth:`product`)."""

    def __init__(self, in_formats, out_format, *, lanes=1, rounding="nearest", overflow="saturate",
                 pipelining=Pipelining()):
        self._in_formats = dict(in_formats)
        self._out_format = out_format
        self._lanes = lanes
        self._rounding = rounding
        self._overflow_mode = overflow
        self.pipelining = pipelining
        # The exact result's stage (a product's, or the register of a sum), then the rounding and
        # the saturation, in a stage each where they are apart.
        self.latency = (1 if self.multiplier is None else self.multiplier.latency) + 1 + self.rounds_apart
        self.contract = TimingContract.pipeline(tuple(self._in_formats), self.latency)

    @property
    def rounds_apart(self):
        """Whether the rounding to :attr:`out_format` has a register stage of its own before the
        saturation (``pipelining.post_multiply_add``). A core without a product builds it only
        where the rounding adds a carry chain: a truncation, or no bits dropped, leaves the
        saturation's comparisons alone in their stage, and the stage would be latency for nothing."""
        if not self.pipelining.post_multiply_add:
            return False
        return self.multiplier is not None or (
            self._rounding == "nearest" and self._exact_format().frac_bits > self._out_format.frac_bits)

    def _exact_format(self):
        """The format of :meth:`compute`'s exact result, which depends on the formats alone."""
        return self.compute(dict.fromkeys([*self._in_formats, "const"], 0))[1]

    @property
    def out_format(self):
        return self._out_format

    @property
    def lanes(self):
        return self._lanes

    @property
    def multipliers(self):
        return () if self.multiplier is None else (self.multiplier,) * self._lanes

    @property
    def memories(self):
        return ()

    def compute(self, operands):
        """Return ``(value, format)``: the exact result from the operands' raw values.

        ``operands`` maps input names (and ``"const"`` to a core's constant operand) to raw values:
        amaranth values of one lane in hardware, integer arrays in :meth:`reference`. A core with a
        :attr:`multiplier` defines :meth:`product` instead.
        """
        a, b, addend, shift, fmt = self.product(operands)
        value = (a * b) << shift
        return (value if addend is None else value + addend), fmt

    def product(self, operands):
        """Return ``(a, b, addend, shift, format)``: the exact result is ``(a * b << shift) + addend``.

        ``addend`` may be ``None``. In hardware, :attr:`multiplier` forms it (``a`` and ``b`` of its
        operand shapes) in ``multiplier.latency`` register stages.
        """
        raise NotImplementedError

    def prepare(self, m, fire):
        """Add any state shared by the lanes (called once, before :meth:`compute`)."""

    def constant_operand(self, m, lane):
        """The raw constant operand ``"const"`` of one lane in hardware, if the core has one."""

    def extra_members(self):
        """Ports besides the streams and ``overflow`` (a loaded vector's ``load``)."""
        return {}

    def reference_constant(self, elements):
        """The raw constant operand ``"const"`` met by each of ``elements`` stream elements, if any."""

    def reference(self, *raw_inputs):
        """Bit-exact model: raw outputs for raw inputs (equal-shape integer arrays, the last axis in
        stream order and holding whole repetitions of any constant vector)."""
        exact = self._exact_format()
        operands = {name: exact_integers(raw, exact.width + 1) for name, raw in zip(self._in_formats, raw_inputs)}
        constant = self.reference_constant(next(iter(operands.values())).shape[-1])
        if constant is not None:
            operands["const"] = exact_integers(constant, exact.width + 1)
        value, fmt = self.compute(operands)
        return convert_raw(value, fmt, self._out_format, rounding=self._rounding, overflow=self._overflow_mode)[0]


class _ElementwiseCore(ModelledComponent):
    """Shared pipeline of the element-wise cores (parameters and timing in :class:`_Elementwise`).

    Ports
    -----
    <inputs> : In(stream.Signature(ArrayLayout(signed, lanes)))
        One per entry of ``in_formats``; a beat is taken from all of them in the same cycle.
    o : Out(stream.Signature(ArrayLayout(out_format.shape, lanes)))
    overflow : Out(1)
        Sticky: set once any result did not fit ``out_format``.
    """

    def members(self):
        members = {name: In(lanes_signature(fmt, self._lanes)) for name, fmt in self._in_formats.items()}
        members["o"] = Out(lanes_signature(self._out_format, self._lanes))
        members["overflow"] = Out(1)
        return members | self.extra_members()

    def elaborate(self, platform):
        m = Module()
        inputs = [getattr(self, name) for name in self._in_formats]
        advance = ~self.o.valid | self.o.ready
        all_valid = Cat(port.valid for port in inputs).all()
        fire = all_valid & advance
        for port in inputs:
            others = Cat(other.valid for other in inputs if other is not port)
            m.d.comb += port.ready.eq(advance & (others.all() if len(inputs) > 1 else 1))
        self.prepare(m, fire)

        full_valid = fire
        for stage in range(self.latency - 1):  # a valid bit beside each stage before the rounding
            stage_valid = Signal(name=f"full_valid{stage}")
            with m.If(advance):
                m.d.sync += stage_valid.eq(full_valid)
            full_valid = stage_valid
        with m.If(advance):
            m.d.sync += self.o.valid.eq(full_valid)
        lane_overflow = []
        for lane in range(self._lanes):
            operands = {name: getattr(self, name).payload[lane] for name in self._in_formats}
            constant = self.constant_operand(m, lane)
            if constant is not None:
                operands["const"] = constant
            if self.multiplier is None:
                value, fmt = self.compute(operands)
                full = Signal(value.shape(), name=f"full{lane}")
                with m.If(fire):
                    m.d.sync += full.eq(value)
            else:
                a, b, addend, shift, fmt = self.product(operands)
                full = self.multiplier.build(m, a, b, enable=advance, addend=addend, shift=shift,
                                             name=f"full{lane}")
            if self.rounds_apart:
                full, fmt = _rounded(m, advance, full, fmt, self._out_format, self._rounding, lane)
            rounded, overflowed = convert(full, fmt, self._out_format,
                                          rounding=self._rounding, overflow=self._overflow_mode)
            with m.If(advance):
                m.d.sync += self.o.payload[lane].eq(rounded)
            lane_overflow.append(overflowed)
        with m.If(advance & full_valid & Cat(lane_overflow).any()):
            m.d.sync += self.overflow.eq(1)
        return m


def _rounded(m, advance, value, fmt, out_format, rounding, lane):
    """``value`` of format ``fmt`` rounded to the fractional bits of ``out_format`` in a register
    stage of its own, and its format: what is left to :func:`~cores.fixed.convert` is the
    saturation, whose comparisons then do not follow the rounding's carry chain in one stage."""
    shift = fmt.frac_bits - out_format.frac_bits
    # one bit over the value's integer bits holds the rounding's carry
    rounded_format = Q(max(len(value) - shift, 1) + 1 - out_format.frac_bits, out_format.frac_bits)
    rounded = Signal(rounded_format.shape, name=f"rounded{lane}")
    with m.If(advance):
        m.d.sync += rounded.eq(convert(value, fmt, rounded_format, rounding=rounding, overflow="wrap")[0])
    return rounded, rounded_format


def _aligned(value, fmt, frac_bits):
    return value << (frac_bits - fmt.frac_bits)


class AddModel(_Elementwise):
    """The model of :class:`Add`."""

    def __init__(self, a_format, b_format, out_format, **kwargs):
        super().__init__({"a": a_format, "b": b_format}, out_format, **kwargs)

    def compute(self, operands):
        a, b = self._in_formats["a"], self._in_formats["b"]
        frac = max(a.frac_bits, b.frac_bits)
        value = _aligned(operands["a"], a, frac) + _aligned(operands["b"], b, frac)
        return value, Q(max(a.int_bits, b.int_bits) + 1, frac)


class Add(_ElementwiseCore, AddModel):
    """``o = a + b``, element-wise. Error: at most 1/2 ulp of ``out_format`` (none if it is wide enough)."""


class SubModel(_Elementwise):
    """The model of :class:`Sub`."""

    def __init__(self, a_format, b_format, out_format, **kwargs):
        super().__init__({"a": a_format, "b": b_format}, out_format, **kwargs)

    def compute(self, operands):
        a, b = self._in_formats["a"], self._in_formats["b"]
        frac = max(a.frac_bits, b.frac_bits)
        value = _aligned(operands["a"], a, frac) - _aligned(operands["b"], b, frac)
        return value, Q(max(a.int_bits, b.int_bits) + 1, frac)


class Sub(_ElementwiseCore, SubModel):
    """``o = a - b``, element-wise. Error: at most 1/2 ulp of ``out_format``."""


class MulModel(_Elementwise):
    """The model of :class:`Mul`."""

    def __init__(self, a_format, b_format, out_format, *, dsp_shape=DSP48E2, pipelining=Pipelining(), **kwargs):
        self.multiplier = Multiplier(a_format.shape, b_format.shape, dsp_shape=dsp_shape, pipelining=pipelining)
        super().__init__({"a": a_format, "b": b_format}, out_format, pipelining=pipelining, **kwargs)

    def product(self, operands):
        a, b = self._in_formats["a"], self._in_formats["b"]
        return operands["a"], operands["b"], None, 0, Q(a.int_bits + b.int_bits, a.frac_bits + b.frac_bits)


class Mul(_ElementwiseCore, MulModel):
    """``o = a * b``, element-wise. Error: at most 1/2 ulp of ``out_format``."""


class NegModel(_Elementwise):
    """The model of :class:`Neg`."""

    def __init__(self, a_format, out_format, **kwargs):
        super().__init__({"a": a_format}, out_format, **kwargs)

    def compute(self, operands):
        a = self._in_formats["a"]
        return -operands["a"], Q(a.int_bits + 1, a.frac_bits)


class Neg(_ElementwiseCore, NegModel):
    """``o = -a``, element-wise. Error: at most 1/2 ulp of ``out_format``."""


class MulAddModel(_Elementwise):
    """The model of :class:`MulAdd`."""

    def __init__(self, a_format, b_format, c_format, out_format, *, dsp_shape=DSP48E2, pipelining=Pipelining(),
                 **kwargs):
        self.multiplier = Multiplier(a_format.shape, b_format.shape, dsp_shape=dsp_shape, with_addend=True,
                                     pipelining=pipelining)
        super().__init__({"a": a_format, "b": b_format, "c": c_format}, out_format, pipelining=pipelining, **kwargs)

    def product(self, operands):
        a, b, c = (self._in_formats[name] for name in "abc")
        product = Q(a.int_bits + b.int_bits, a.frac_bits + b.frac_bits)
        frac = max(product.frac_bits, c.frac_bits)
        return (operands["a"], operands["b"], _aligned(operands["c"], c, frac), frac - product.frac_bits,
                Q(max(product.int_bits, c.int_bits) + 1, frac))


class MulAdd(_ElementwiseCore, MulAddModel):
    """Fused ``o = a * b + c``, element-wise, rounded once. Error: at most 1/2 ulp of ``out_format``."""


class ScaleModel(_Elementwise):
    """The model of :class:`Scale`."""

    def __init__(self, a_format, out_format, scale, *, const_width=18, dsp_shape=DSP48E2, pipelining=Pipelining(),
                 **kwargs):
        self._const_format = constant_format([scale], const_width)
        self._scale_raw = int(self._const_format.quantize([scale])[0])
        self.scale = scale
        self.multiplier = Multiplier(a_format.shape, self._const_format.shape, dsp_shape=dsp_shape,
                                     pipelining=pipelining)
        super().__init__({"a": a_format}, out_format, pipelining=pipelining, **kwargs)

    def product(self, operands):
        a, c = self._in_formats["a"], self._const_format
        return operands["a"], operands["const"], None, 0, Q(a.int_bits + c.int_bits, a.frac_bits + c.frac_bits)

    def constant_operand(self, m, lane):
        return Const(self._scale_raw, self._const_format.shape)

    def reference_constant(self, elements):
        return self._scale_raw


class Scale(_ElementwiseCore, ScaleModel):
    """``o = scale * a`` for a constant real ``scale``.

    The constant is held in ``const_width`` bits (18 by default: one DSP48E2 B port), so the
    error is at most 1/2 ulp of ``out_format`` plus ``|a| * |scale| * 2**-const_width``.
    """


class _ConstantOperand(_Elementwise):
    """Element-wise op with a constant vector operand that repeats every ``len(values)`` elements.

    Element ``i`` of the stream meets ``values[i % len(values)]``; the vector is held in a small
    read-only memory (LUTRAM) per lane, indexed by a beat counter.

    With a ``bound`` the vector is loaded at run time instead (runtime weights): its format holds
    ``bound``, ``values`` are only what the model computes with (the memory has no initial
    contents), and beat ``j`` meets ``values[j % len(values)]`` in every lane, each lane a sample
    of its own. The memory takes a row of ``E = WORD_BITS // const_width`` elements from each word
    of the ``load`` port (:mod:`cores.weights`); a register holds the element of the coming beat,
    read from it one cycle ahead.
    """

    def __init__(self, a_format, out_format, values, const_format, *, bound=None, word_bits=WORD_BITS, **kwargs):
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        lanes = kwargs.get("lanes", 1)
        if bound is None and values.size % lanes:
            raise ValueError(f"constant of {values.size} elements does not fill whole beats of {lanes} lanes")
        self._const_format = const_format
        self.bound = bound
        self.word_bits = word_bits
        self._const_raw = const_format.quantize(values).reshape(-1, 1 if bound is not None else lanes)
        self.values = values
        if bound is not None:
            self.loaded_values = ("values", "_const_raw")
        super().__init__({"a": a_format}, out_format, **kwargs)

    @property
    def memories(self):
        if self.bound is not None:
            each, rows = self._row_shape
            return (Storage(self._const_format.width * each, rows, False),)
        return (Storage(self._const_format.width, self._const_raw.shape[0], True, self._lanes),)

    @property
    def _row_shape(self):
        """``(E, rows)`` of a loaded vector's memory."""
        layout = self.weight_layout
        return layout.row_elements, layout.rows

    @property
    def runtime_weights(self):
        """Whether the vector is loaded at run time (``bound``) rather than a constant."""
        return self.bound is not None

    @property
    def weight_layout(self):
        """How a loaded vector's ``load`` segment stores it (:class:`cores.weights.WeightLayout`)."""
        return WeightLayout("vector", self._const_format, elements=self.values.size, word_bits=self.word_bits)

    def extra_members(self):
        return {"load": In(load_signature(self.word_bits))} if self.bound is not None else {}

    def prepare(self, m, fire):
        beats = self._const_raw.shape[0]
        self._beat = Signal(range(beats), name="beat")
        with m.If(fire):
            m.d.sync += self._beat.eq(Mux(self._beat == beats - 1, 0, self._beat + 1))
        if self.bound is not None:
            self._loaded = self._loaded_operand(m, fire)

    def _loaded_operand(self, m, fire):
        each, rows = self._row_shape
        shape = self._const_format.shape
        memory = m.submodules.vector = Memory(shape=data.ArrayLayout(shape, each), depth=rows, init=[])
        write = memory.write_port()
        row, enables, _ = segment_writes(m, self.load, each, self._const_format.width, rows)
        m.d.comb += [write.addr.eq(row), write.en.eq(enables[0]),
                     write.data.eq(self.load.payload[:each * self._const_format.width])]
        # The element of the beat the core fires next, read a cycle ahead: the next element in a
        # cycle that fires, else the current one (so it also follows a load). Row and slot are
        # counters of their own: no division by E.
        beats = self._const_raw.shape[0]
        row_now, slot_now = Signal(range(rows), name="row_now"), Signal(range(each), name="slot_now")
        last = self._beat == beats - 1
        row_next, slot_next = Signal.like(row_now), Signal.like(slot_now)
        m.d.comb += [slot_next.eq(Mux(last | (slot_now == each - 1), 0, slot_now + 1)),
                     row_next.eq(Mux(last, 0, Mux(slot_now == each - 1, row_now + 1, row_now)))]
        with m.If(fire):
            m.d.sync += [row_now.eq(row_next), slot_now.eq(slot_next)]
        read = memory.read_port(domain="comb")
        m.d.comb += read.addr.eq(Mux(fire, row_next, row_now))
        operand = Signal(shape, name="operand")
        m.d.sync += operand.eq(read.data[Mux(fire, slot_next, slot_now)])
        return operand

    def reference_constant(self, elements):
        raw = self._const_raw.reshape(-1)
        return np.resize(np.repeat(raw, self._lanes) if self.bound is not None else raw, elements)

    def constant_operand(self, m, lane):
        if self.bound is not None:
            return self._loaded
        beats = self._const_raw.shape[0]
        if beats == 1:
            return Const(int(self._const_raw[0, lane]), self._const_format.shape)
        rom = Memory(shape=self._const_format.shape, depth=beats,
                     init=[int(v) for v in self._const_raw[:, lane]])
        m.submodules[f"const{lane}"] = rom
        port = rom.read_port(domain="comb")
        m.d.comb += port.addr.eq(self._beat)
        return port.data


def _vector_format(values, bound, width):
    """The format of a constant vector: its values', or a loaded vector's ``bound``."""
    return constant_format(values, width) if bound is None else Q.for_range(bound, width)


class AddConstModel(_ConstantOperand):
    """The model of :class:`AddConst`."""

    def __init__(self, a_format, out_format, values, *, const_width=32, bound=None, **kwargs):
        super().__init__(a_format, out_format, values, _vector_format(values, bound, const_width), bound=bound,
                         **kwargs)

    def compute(self, operands):
        a, c = self._in_formats["a"], self._const_format
        frac = max(a.frac_bits, c.frac_bits)
        value = _aligned(operands["a"], a, frac) + _aligned(operands["const"], c, frac)
        return value, Q(max(a.int_bits, c.int_bits) + 1, frac)


class AddConst(_ElementwiseCore, AddConstModel):
    """``o = a + c`` with a constant vector ``c`` repeated along the stream (e.g. a bias).

    Error: at most 1/2 ulp of ``out_format`` plus the constant's quantization, 2**-(frac+1) of the
    ``const_width``-bit constant format.

    With ``bound`` (runtime weights) ``c`` is loaded through the ``load`` port: see
    :class:`_ConstantOperand` and :mod:`cores.weights`. The timing is the same.
    """


class MulConstModel(_ConstantOperand):
    """The model of :class:`MulConst`."""

    def __init__(self, a_format, out_format, values, *, const_width=18, bound=None, dsp_shape=DSP48E2,
                 pipelining=Pipelining(), **kwargs):
        const_format = _vector_format(values, bound, const_width)
        self.multiplier = Multiplier(a_format.shape, const_format.shape, dsp_shape=dsp_shape, pipelining=pipelining)
        super().__init__(a_format, out_format, values, const_format, bound=bound, pipelining=pipelining, **kwargs)

    def product(self, operands):
        a, c = self._in_formats["a"], self._const_format
        return operands["a"], operands["const"], None, 0, Q(a.int_bits + c.int_bits, a.frac_bits + c.frac_bits)


class MulConst(_ElementwiseCore, MulConstModel):
    """``o = a * c`` with a constant vector ``c`` repeated along the stream.

    Error: at most 1/2 ulp of ``out_format`` plus ``|a| * 2**-(frac+1)`` of the constant format.

    With ``bound`` (runtime weights) ``c`` is loaded through the ``load`` port: see
    :class:`_ConstantOperand` and :mod:`cores.weights`. The timing is the same.
    """

"""Pipelined products split into partial products that each fit one DSP slice.

An UltraScale+ DSP48E2 multiplies a 27-bit by an 18-bit two's-complement operand. A wider product
is split here, in the design, instead of being left to synthesis: every operand is cut into
pieces, each pair of pieces is one partial product that fits one DSP, and a pipelined adder tree
sums the registered partial products. Cores declare cycle-exact contracts, so the latency of the
split is known in Python from the operand shapes alone (:attr:`Multiplier.latency`), and so is
the DSP count (:attr:`Multiplier.dsps`, which :meth:`devices.Device.dsps` returns). Other devices
have other port widths (a 7-series DSP48E1 is 25 × 18): pass them as ``dsp_shape``.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Mux, Shape, Signal, Value

from .pipelining import UNPIPELINED

__all__ = ["Multiplier", "Piece", "DSP48E2", "LUT_PIECE_BITS"]

DSP48E2 = (27, 18)
"""Operand widths of the signed multiplier of an UltraScale and UltraScale+ DSP48E2 slice: the
default ``dsp_shape`` of the cores, and the one place this fact is written."""


@dataclass(frozen=True)
class Piece:
    """Bits ``[offset, offset + shape.width)`` of an operand, read as ``shape``; ``dsp`` is False for
    a low piece of at most 2 bits whose partial products are shift-and-adds in LUTs."""

    offset: int
    shape: Shape
    dsp: bool = True


#: The widest low piece of an operand that becomes shift-and-adds in LUTs instead of a DSP column:
#: a product by a 2-bit piece is one add of two shifted copies of the other piece.
LUT_PIECE_BITS = 2


def _pieces(shape, port_width):
    """Cut an operand of ``shape`` into pieces that each fit a signed ``port_width``-bit port.

    A signed port holds ``port_width - 1`` unsigned bits, so every piece but the top one is
    unsigned and at most ``port_width - 1`` bits wide; the top piece carries the operand's sign
    bit, if it has one, on top of those. Where the bits left over beyond one piece fewer are at most
    :data:`LUT_PIECE_BITS`, they are a low piece of their own whose partial products are
    shift-and-adds in LUTs, so that a 20-bit operand takes one 18-bit port, not two. The widths of
    the other pieces are balanced so that no piece is needlessly narrow (a 2-bit piece would
    still take a whole DSP).
    """
    magnitude = shape.width - shape.signed
    count = max(1, -(-magnitude // (port_width - 1)))
    lut_bits = 0
    if count > 1 and -(-(magnitude - LUT_PIECE_BITS) // (port_width - 1)) < count:
        count -= 1
        lut_bits = magnitude - count * (port_width - 1)
    base, extra = divmod(magnitude - lut_bits, count)
    widths = [base + (k >= count - extra) for k in range(count)]
    widths[-1] += shape.signed
    pieces, offset = [], 0
    if lut_bits:
        pieces.append(Piece(0, Shape(lut_bits, signed=False), dsp=False))
        offset = lut_bits
    for k, width in enumerate(widths):
        top = k == count - 1
        pieces.append(Piece(offset, Shape(width, signed=shape.signed and top)))
        offset += width
    return tuple(pieces)


def _bounds(shape):
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


def _shape_of(low, high):
    """The narrowest shape that holds every integer in ``[low, high]``."""
    if low >= 0:
        return Shape(max(1, high.bit_length()), signed=False)
    return Shape(max(high.bit_length(), (-low - 1).bit_length()) + 1, signed=True)


def _product_bounds(a, b):
    corners = [x * y for x in a for y in b]
    return min(corners), max(corners)


@dataclass
class _Term:
    """A pipelined summand: ``value << shift``, with ``value`` in ``[low, high]``."""

    value: Value
    shift: int
    low: int
    high: int


class Multiplier:
    """A pipelined product ``a * b`` of two fixed-shape operands, split into DSP-sized partial products.

    The operands are cut into pieces that each fit one port of the DSP multiplier (signed
    ``dsp_shape[0] × dsp_shape[1]``): the low pieces of an operand are unsigned, at most one bit
    narrower than the port, its top piece keeps the sign; up to 2 bits left over beyond a port's
    width are a low piece of their own that takes no DSP. Each pair of an ``a`` piece and a ``b``
    piece is one partial product: in a DSP, or, with such a low piece, a shift-and-add in LUTs.
    The operand order (which operand meets the wide port) is the one with fewer DSPs, then fewer
    partial products. A product whose operands each fit their port is not split: it is one
    registered ``*``.

    Hardware (:meth:`build`), with every register loaded while ``enable`` is high and none reset
(they hold data, whose valid bits are the core's; a reset would reach every one of them):

    1. with ``pipelining.multiplier_inputs``, the operands and the addend registered (the DSP's
       input registers; constant operands need none);
    2. the partial products, each registered (the DSP's own output register), the lowest one with
       the optional ``addend`` added (the DSP's post-adder) unless ``pipelining.post_multiply_add``;
    3. a binary adder tree over the partial products, ordered by weight, one registered level per
       stage; each adder spans only the bits where its two summands overlap;
    4. with ``pipelining.post_multiply_add`` and an addend, the addend added in a stage of its own.

    With a DSP primitive (``pipelining.dsp``, :class:`~cores.dsp.DspPrimitive`), each partial
    product of steps 1 and 2 is one instance of it: the operand registers are the primitive's input
    registers, one set per partial product, and the product's register is the primitive's output
    register (the DSP48E2 keeps its M register before it: one cycle more). The addend then always
    gets a stage of its own (step 4).

    A product with an operand of at most 2 bits is built as one registered shift-and-add instead:
    a few LUTs, where synthesis would otherwise spend a DSP on it.

    Parameters
    ----------
    a_shape, b_shape : Shape
        Shapes of the operands, signed or unsigned.
    dsp_shape : (int, int)
        Widths of the signed operands of one DSP multiplier; :data:`DSP48E2` by default.
    with_addend : bool
        Whether :meth:`build` is given an ``addend`` (which may take a stage of its own).
    pipelining : Pipelining
        The optional registers (:class:`~cores.pipelining.Pipelining`): ``multiplier_inputs``,
        ``post_multiply_add`` and the DSP primitive ``dsp`` (whose ``shape`` must be
        ``dsp_shape``) apply here. None of them by default (:data:`~cores.pipelining.UNPIPELINED`);
        the cores pass theirs.

    Attributes
    ----------
    a_pieces, b_pieces : tuple of Piece
        How the operands are cut (empty for a shift-and-add product).
    a_wide : bool
        Whether the ``a`` pieces meet the wide port of the DSP (``dsp_shape[0]``).
    partials : int
        Partial products: ``len(a_pieces) * len(b_pieces)``.
    latency : int
        Register stages from the operands to the result: ``product_stages + ceil(log2(partials))``
        (``product_stages`` for a product that is not split; 1, or 2 for the DSP48E2 primitive),
        plus 1 for the input registers (``multiplier_inputs``, but not for a shift-and-add product)
        and 1 for the addend's own stage (``with_addend`` and ``post_multiply_add`` or a primitive).
    dsps : int
        DSP slices: one per partial product of two DSP pieces, none for a shift-and-add (yosys
        ``synth_xilinx`` maps each such partial product to exactly one DSP48E2). For signed ``a``-
        and ``b``-bit operands and the DSP48E2 this is
        ``min(n(a, 27) * n(b, 18), n(a, 18) * n(b, 27))`` with ``n(w, port) = max(1,
        ceil((w-3)/(port-1)))``, or 0 when ``min(a, b) <= 2``: :meth:`devices.Device.dsps`.
    shape : Shape
        Shape of the result of :meth:`build` without addend or shift: the exact range of ``a * b``.
    """

    def __init__(self, a_shape, b_shape, *, dsp_shape=DSP48E2, with_addend=False, pipelining=UNPIPELINED):
        self.a_shape, self.b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        if min(self.a_shape.width, self.b_shape.width) < 1:
            raise ValueError(f"operands need at least one bit, not {self.a_shape} and {self.b_shape}")
        if min(dsp_shape) < 2:
            raise ValueError(f"a DSP multiplier port has at least 2 bits, not {dsp_shape}")
        self.dsp_shape = tuple(dsp_shape)
        if pipelining.dsp is not None and pipelining.dsp.shape != self.dsp_shape:
            raise ValueError(f"the {pipelining.dsp.name} multiplies {pipelining.dsp.shape[0]} × "
                             f"{pipelining.dsp.shape[1]} bits, not {self.dsp_shape[0]} × {self.dsp_shape[1]}")
        self.with_addend = with_addend
        self.pipelining = pipelining
        self.shift_and_add = min(self.a_shape.width, self.b_shape.width) <= 2
        if self.shift_and_add:
            self.a_pieces = self.b_pieces = ()
            self.a_wide = True
        else:
            wide, narrow = self.dsp_shape
            order = (_pieces(self.a_shape, wide), _pieces(self.b_shape, narrow))
            swapped = (_pieces(self.a_shape, narrow), _pieces(self.b_shape, wide))
            self.a_pieces, self.b_pieces = min(order, swapped, key=lambda cut: (_dsp_pairs(*cut), len(cut[0]) * len(cut[1])))
            self.a_wide = (self.a_pieces, self.b_pieces) == order
        low, high = _product_bounds(_bounds(self.a_shape), _bounds(self.b_shape))
        self.shape = _shape_of(low, high)

    @property
    def partials(self):
        return len(self.a_pieces) * len(self.b_pieces)

    @property
    def dsps(self):
        return _dsp_pairs(self.a_pieces, self.b_pieces)

    @property
    def primitive(self):
        """The :class:`~cores.dsp.DspPrimitive` each partial product instantiates, or None (a
        ``*`` for synthesis to map, and always for a shift-and-add product)."""
        return None if self.shift_and_add else self.pipelining.dsp

    @property
    def registers_inputs(self):
        """Whether :meth:`build` registers the operands first (a shift-and-add product is no DSP)."""
        return self.pipelining.multiplier_inputs and not self.shift_and_add

    @property
    def product_stages(self):
        """Registers from the (registered) operands to the partial products: the primitive's, or one."""
        return 1 if self.primitive is None else self.primitive.product_stages

    @property
    def adds_apart(self):
        """Whether :meth:`build` adds the addend in a stage of its own, after the product (always
        after a primitive's output register)."""
        return self.with_addend and (self.pipelining.post_multiply_add or self.primitive is not None)

    @property
    def latency(self):
        return (self.registers_inputs + self.product_stages + (max(self.partials, 1) - 1).bit_length()
                + self.adds_apart)

    def build(self, m, a, b, *, enable=None, addend=None, shift=0, name="product"):
        """Add the pipelined product to ``m``; return ``(a * b << shift) + addend``, exactly.

        Parameters
        ----------
        m : Module
        a, b : Value
            The operands, of :attr:`a_shape` and :attr:`b_shape`, sampled when ``enable`` is high.
        enable : Value or None
            Clock enable of every register of the pipeline (e.g. a pipeline's ``advance``); always
            enabled when ``None``. The result of the operands sampled in a cycle with ``enable``
            high is available after ``latency`` more cycles with ``enable`` high.
        addend : Value or None
            Added to the product, sampled together with the operands: given if and only if the
            multiplier was built ``with_addend``.
        shift : int
            Left shift of the product before the addend is added (to align a finer addend).
        name : str
            Prefix of the names of the registers.

        Returns
        -------
        Value
            A register (or a constant shift of one), of the exact shape of its range.
        """
        a, b = Value.cast(a), Value.cast(b)
        if a.shape() != self.a_shape or b.shape() != self.b_shape:
            raise ValueError(f"operands of shapes {a.shape()} and {b.shape()} given to a multiplier "
                             f"of {self.a_shape} by {self.b_shape}")
        if (addend is not None) != self.with_addend:
            raise ValueError(f"a multiplier built with with_addend={self.with_addend} takes "
                             f"{'an' if self.with_addend else 'no'} addend")
        if self.registers_inputs:
            if self.primitive is None:
                a = _hold(m, enable, a, f"{name}_a")
                b = _hold(m, enable, b, f"{name}_b")
            if addend is not None:
                addend = _hold(m, enable, addend, f"{name}_addend")
        # Every partial product with the registers still to load before the adder tree: none for
        # a primitive's (its output register), `product_stages` for one in the fabric.
        if self.shift_and_add:
            bounds = _product_bounds(_bounds(self.a_shape), _bounds(self.b_shape))
            terms = [(_Term(_shift_and_add(a, b), shift, *bounds), 1, f"{name}_partial0")]
        else:
            terms = []
            for pa in self.a_pieces:
                for pb in self.b_pieces:
                    bounds = _product_bounds(_bounds(pa.shape), _bounds(pb.shape))
                    part = f"{name}_partial{len(terms)}"
                    if self.primitive is not None and pa.dsp and pb.dsp:
                        value, stages = _fit(self._dsp_product(m, a, pa, b, pb, enable, part), *bounds), 0
                    else:
                        x, y = _read(a, pa), _read(b, pb)
                        if self.primitive is not None and self.registers_inputs:
                            x = x if isinstance(a, Const) else _hold(m, enable, x, f"{part}_a")
                            y = y if isinstance(b, Const) else _hold(m, enable, y, f"{part}_b")
                        value = x * y if pa.dsp and pb.dsp else _shift_and_add(x, y)
                        stages = self.product_stages
                    terms.append((_Term(value, shift + pa.offset + pb.offset, *bounds), stages, part))
            terms.sort(key=lambda term: term[0].shift)
        # The range of the whole result, in units of its lowest summand's weight: the sum of the
        # partial products' ranges bounds it only loosely.
        low, high = _product_bounds(_bounds(self.a_shape), _bounds(self.b_shape))
        if self.with_addend and not self.adds_apart:
            addend = Value.cast(addend)
            add_low, add_high = _bounds(addend.shape())
            low, high = (low << shift) + add_low, (high << shift) + add_high
            (first, stages, part) = terms[0]
            terms[0] = (_Term((first.value << first.shift) + addend, 0, (first.low << first.shift) + add_low,
                              (first.high << first.shift) + add_high), stages, part)
        if len(terms) == 1:
            (only, stages, part), = terms
            terms = [(_Term(only.value, only.shift, low, high), stages, part)]
        terms = [_delay(m, enable, term, stages, part) for term, stages, part in terms]
        # One registered level of the adder tree per stage.
        level = 0
        while len(terms) > 1:
            level += 1
            terms = [_add(*terms[k:k + 2]) if k + 1 < len(terms) else terms[k] for k in range(0, len(terms), 2)]
            if len(terms) == 1:
                terms = [_Term(terms[0].value, terms[0].shift, low, high)]
            terms = [_register(m, enable, term, f"{name}_sum{level}_{k}") for k, term in enumerate(terms)]
        result = terms[0]
        product = result.value << result.shift if result.shift else result.value
        if not self.adds_apart:
            return product
        # the addend waits beside the product's stages, then is added in a stage of its own
        for stage in range(self.product_stages + level):
            addend = _hold(m, enable, addend, f"{name}_addend{stage}")
        add_low, add_high = _bounds(addend.shape())
        total = _Term(product + addend, 0, (low << shift) + add_low, (high << shift) + add_high)
        return _register(m, enable, total, f"{name}_sum").value


    def _dsp_product(self, m, a, pa, b, pb, enable, name):
        """The partial product of pieces ``pa`` of ``a`` and ``pb`` of ``b`` in one instance of the
        primitive, the operand registers inside it (none for a constant operand)."""
        operands = [(_read(a, pa), self.registers_inputs and not isinstance(a, Const)),
                    (_read(b, pb), self.registers_inputs and not isinstance(b, Const))]
        (wide, hold_wide), (narrow, hold_narrow) = operands if self.a_wide else operands[::-1]
        return self.primitive.build(m, wide, narrow, enable=enable, register_a=hold_wide, register_b=hold_narrow,
                                    name=name)


def _dsp_pairs(a_pieces, b_pieces):
    """Partial products of two cuts that take a DSP: those of two DSP pieces."""
    return sum(pa.dsp for pa in a_pieces) * sum(pb.dsp for pb in b_pieces)


def _delay(m, enable, term, stages, name):
    """``term`` after ``stages`` registers: the first named ``name``, the others after it."""
    for stage in range(stages):
        term = _register(m, enable, term, name if stage == 0 else f"{name}_{stage}")
    return term


def _fit(value, low, high):
    """The low bits of ``value`` that hold every integer in ``[low, high]``, read as such."""
    shape = _shape_of(low, high)
    bits = value[:shape.width]
    return bits.as_signed() if shape.signed else bits


def _read(operand, piece):
    bits = operand[piece.offset:piece.offset + piece.shape.width]
    return bits.as_signed() if piece.shape.signed else bits


def _shift_and_add(a, b):
    """``a * b`` as a sum of shifted copies of the wider operand, one per bit of the narrower."""
    if len(a) < len(b):
        a, b = b, a
    copies = [Mux(b[k], a << k, 0) for k in range(len(b))]
    if b.shape().signed:
        copies[-1] = -copies[-1]
    return sum(copies[1:], copies[0])


def _add(low, high):
    """``low + high`` for ``low.shift <= high.shift``: the bits of ``low`` below ``high`` pass through.

    Summands ordered by weight overlap (a partial product reaches at least as high as the next
    one starts), so ``low`` has those bits.
    """
    gap = high.shift - low.shift
    overlap = (low.value >> gap) + high.value
    value = Cat(low.value[:gap], overlap)
    if overlap.shape().signed:
        value = value.as_signed()
    return _Term(value, low.shift, low.low + (high.low << gap), low.high + (high.high << gap))


def _register(m, enable, term, name):
    register = Signal(_shape_of(term.low, term.high), name=name, reset_less=True)
    _load(m, enable, register, term.value)
    return _Term(register, term.shift, term.low, term.high)


def _hold(m, enable, value, name):
    """``value`` registered, unless it is a constant (a constant operand needs no input register)."""
    value = Value.cast(value)
    if isinstance(value, Const):
        return value
    register = Signal(value.shape(), name=name, reset_less=True)
    _load(m, enable, register, value)
    return register


def _load(m, enable, register, value):
    if enable is None:
        m.d.sync += register.eq(value)
    else:
        with m.If(enable):
            m.d.sync += register.eq(value)

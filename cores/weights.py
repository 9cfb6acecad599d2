"""Weights loaded at run time: the word layout of a weight image, and its packing.

A core that stores weights in writable memories (a runtime-weight :class:`~cores.matmul.MatVec`,
:class:`~cores.elementwise.AddConst` or :class:`~cores.elementwise.MulConst`) fills them from a
stream of :data:`WORD_BITS`-bit words: its *segment* of the weight image.

Word layout
-----------
A segment is a memory's *rows*: each row is ``k`` elements of ``width`` bits, the raw two's
complement values of the memory's number format, written in one cycle. A row takes
``ceil(k / E)`` words, ``E = WORD_BITS // width`` elements a word: word ``j`` of a row holds
elements ``j*E`` to ``min(k, (j+1)*E) - 1``, element ``j*E + e`` in bits ``e*width`` to
``(e+1)*width - 1``; the bits above the last element are zero. A MatVec's row is one address of
its ``P`` banks (bank ``b`` is element ``b``); a constant vector's rows are its elements, ``E`` a
row, in order, the last row completed with zeros.

As bytes (the image a host writes to device memory) word ``n`` is bytes ``n*W/8`` to
``(n+1)*W/8 - 1``, ``W = WORD_BITS``, little-endian: bit ``i`` of a word is bit ``i mod 8`` of its
byte ``i // 8``.
"""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from .fixed import Q

__all__ = ["WORD_BITS", "per_word", "words_per_row", "pack_rows", "unpack_rows", "image_bytes", "image_words",
           "WeightLayout", "image_signature", "load_signature", "segment_writes", "WeightLoader", "LoadRelay",
           "LOAD_LATENCY", "LOAD_START"]

#: Bits per word of a weight image: one beat of a 512-bit AXI4 memory port.
WORD_BITS = 512


def per_word(width, word_bits=WORD_BITS):
    """Elements of ``width`` bits a word holds."""
    if not 1 <= width <= word_bits:
        raise ValueError(f"elements of {width} bits do not fit {word_bits}-bit words")
    return word_bits // width


def words_per_row(elements, width, word_bits=WORD_BITS):
    """Words a row of ``elements`` elements of ``width`` bits takes."""
    return -(-elements // per_word(width, word_bits))


def pack_rows(rows, width, word_bits=WORD_BITS):
    """The words (Python ints) of a segment: ``rows`` (2-D, raw signed integers of ``width`` bits) in the
    word layout of this module."""
    rows = np.asarray(rows, dtype=object)
    count, elements = rows.shape
    each = per_word(width, word_bits)
    mask = (1 << width) - 1
    words = []
    for row in rows.tolist():
        for first in range(0, elements, each):
            word = 0
            for e, value in enumerate(row[first:first + each]):
                word |= (int(value) & mask) << (e * width)
            words.append(word)
    return words


def unpack_rows(words, elements, width, word_bits=WORD_BITS):
    """The rows of ``elements`` raw signed values that :func:`pack_rows` packed into ``words``."""
    each = per_word(width, word_bits)
    per_row = words_per_row(elements, width, word_bits)
    mask, sign = (1 << width) - 1, 1 << (width - 1)
    rows = []
    for start in range(0, len(words), per_row):
        row = []
        for word in words[start:start + per_row]:
            for e in range(min(each, elements - len(row))):
                value = (word >> (e * width)) & mask
                row.append(value - (1 << width) if value & sign else value)
        rows.append(row)
    return np.array(rows, dtype=np.int64).reshape(-1, elements)


@dataclass(frozen=True)
class WeightLayout:
    """How a core's memory holds a stored tensor, as plain data: what a weight image needs of a core.

    ``kind`` is ``"banks"``, the ``parallel`` skewed banks of a :class:`~cores.matmul.MatVec`
    holding a matrix padded to ``padded_shape`` (its rows one bank address each), or ``"vector"``,
    a constant vector of ``elements`` elements in rows of ``word_bits // format.width``. ``format``
    is the elements' number format.
    """

    kind: str
    format: Q
    parallel: int = 0
    padded_shape: tuple = ()
    elements: int = 0
    word_bits: int = WORD_BITS

    @property
    def row_elements(self):
        """Elements a row holds."""
        return self.parallel if self.kind == "banks" else min(per_word(self.format.width, self.word_bits),
                                                             self.elements)

    @property
    def rows(self):
        if self.kind == "banks":
            return self.padded_shape[0] * self.padded_shape[1] // self.parallel
        return -(-self.elements // self.row_elements)

    @property
    def words(self):
        """Words of the segment."""
        return self.rows * words_per_row(self.row_elements, self.format.width, self.word_bits)

    def raw_rows(self, values):
        """The rows that store ``values`` (real numbers), quantized to :attr:`format`."""
        raw = self.format.quantize(np.asarray(values, dtype=np.float64))
        if self.kind == "banks":
            return skewed_banks(raw, self.parallel, self.padded_shape).T
        rows = np.zeros(self.rows * self.row_elements, dtype=object)
        rows[:self.elements] = raw.reshape(-1)
        return rows.reshape(self.rows, self.row_elements)

    def pack(self, values):
        """The segment's words for ``values``."""
        return pack_rows(self.raw_rows(values), self.format.width, self.word_bits)

    def as_dict(self):
        return {"kind": self.kind, "format": str(self.format), "parallel": self.parallel,
                "padded_shape": list(self.padded_shape), "elements": self.elements, "word_bits": self.word_bits}

    @classmethod
    def from_dict(cls, data):
        return cls(data["kind"], Q.parse(data["format"]), data["parallel"], tuple(data["padded_shape"]),
                   data["elements"], data["word_bits"])


def skewed_banks(raw, parallel, padded_shape):
    """``contents[b, a]``: word ``a`` of bank ``b`` of a matrix of raw weights stored in ``parallel``
    skewed banks (:class:`~cores.matmul.MatVec`): ``raw[r, c]`` in bank ``(r + c) mod P`` at address
    ``(r // P) * Cp + c``, zeros in the padding to ``padded_shape`` ``(Rp, Cp)``."""
    rows, columns = padded_shape
    padded = np.zeros((rows, columns), dtype=np.int64)
    padded[:raw.shape[0], :raw.shape[1]] = raw
    r, c = np.indices((rows, columns))
    contents = np.zeros((parallel, rows * columns // parallel), dtype=np.int64)
    contents[(r + c) % parallel, (r // parallel) * columns + c] = padded
    return contents


def image_bytes(words, word_bits=WORD_BITS):
    """The words as the bytes of a weight image: each word ``word_bits / 8`` bytes, little-endian."""
    size = word_bits // 8
    return b"".join(int(word).to_bytes(size, "little") for word in words)


def image_words(data, word_bits=WORD_BITS):
    """The words of the image bytes ``data`` (:func:`image_bytes` undone)."""
    size = word_bits // 8
    if len(data) % size:
        raise ValueError(f"a weight image is whole {size}-byte words, not {len(data)} bytes")
    return [int.from_bytes(data[k:k + size], "little") for k in range(0, len(data), size)]


def image_signature(word_bits=WORD_BITS):
    """The port a design takes its weight image through: a stream of words."""
    return stream.Signature(word_bits)


def load_signature(word_bits=WORD_BITS):
    """The port a core with runtime weights is loaded through: a stream of its segment's words that
    is always ready (the core writes every word in the cycle it comes)."""
    return stream.Signature(word_bits, always_ready=True)


def segment_writes(m, load, elements, width, rows, name="load"):
    """The writes of a segment of ``rows`` rows of ``elements`` elements of ``width`` bits, as its words
    come on the ``load`` port: returns ``(row, enables, data)``, the row the current word belongs to,
    and for each element the enable and data of its write. After the last row the count starts
    again, for the next load."""
    each = per_word(width, len(load.payload))
    words = words_per_row(elements, width, len(load.payload))
    row = Signal(range(max(rows, 2)), name=f"{name}_row")
    part = Signal(range(max(words, 2)), name=f"{name}_part")
    last_part = part == words - 1
    with m.If(load.valid):
        if words > 1:
            m.d.sync += part.eq(Mux(last_part, 0, part + 1))
        with m.If(last_part):
            m.d.sync += row.eq(Mux(row == rows - 1, 0, row + 1))
    enables = [load.valid & (part == k // each) if words > 1 else load.valid for k in range(elements)]
    data = [load.payload[(k % each) * width:(k % each + 1) * width] for k in range(elements)]
    return row, enables, data


#: Cycles a :class:`WeightLoader` adds to the words of an image: from the cycle it takes the first
#: word to the first cycle it can let a sample in, less the image's words.
LOAD_LATENCY = 1

#: Cycles from the first word offered to its taking when the design is idle (the loader holds the
#: input, then sees the design empty).
LOAD_START = 2


class _LoaderState(enum.Enum, shape=2):
    RUN = 0     # samples pass
    DRAIN = 1   # samples held at a group boundary until every sample taken has left
    LOAD = 2    # image words taken, one a cycle, and sent to the segment they belong to
    SETTLE = 3  # the last word's writes land, after the load relays its words pass


class WeightLoader(wiring.Component):
    """Loads a weight image into the cores of a design between batches.

    The image comes on ``weights``, one word a cycle; word ``n`` belongs to the segment whose words
    include it, segments following one another in the order of ``segments``, and goes out on that
    segment's ``load{k}`` port a cycle later. A load never mixes with a run: once a word is offered,
    the input stream is held at the next group boundary (so that no group is split), the loader
    waits until every group taken has left on every output (the design is empty), takes the whole
    image, lets its last writes land, and then lets samples in again. Samples computed before the
    load saw only the old weights, samples after it only the new ones.

    Parameters
    ----------
    segments : list of int
        Words of each core's segment, in image order.
    x_shape : shape
        Payload shape of the input stream.
    group_words : int
        Words of the input stream per group of samples the design computes at once.
    output_group_words : list of int
        Words per group of samples on each output stream.
    word_bits : int
        Bits per image word.
    relays : int
        The most :class:`LoadRelay` stages between a ``load{k}`` port and its core (a core in
        another die): the loader lets samples in only after the last word has passed them.

    Ports
    -----
    weights : In(stream.Signature(word_bits))
        The image.
    i : In(stream.Signature(x_shape)), o : Out(stream.Signature(x_shape))
        The input stream, passed through unless held.
    taken : In(len(output_group_words))
        Bit ``k`` is high in a cycle in which output ``k`` moves a word.
    load{k} : Out(load_signature(word_bits))
        Segment ``k``'s words.
    loading : Out(1)
        The loader holds the input stream (draining, loading or settling).

    Timing
    ------
    The image's words are taken one a cycle, and ``len(image) + LOAD_LATENCY + relays`` cycles
    after the first was taken a sample may come in. The first word is taken :data:`LOAD_START` cycles after
    it is offered to an idle design; a busy one takes it two cycles after the last output of the
    samples it took.
    """

    def __init__(self, segments, x_shape, group_words, output_group_words, *, word_bits=WORD_BITS, relays=0):
        if not segments or min(segments) < 1:
            raise ValueError(f"a loader needs segments of at least one word, not {segments}")
        self.segments = list(segments)
        self.relays = relays
        self.group_words = group_words
        self.output_group_words = list(output_group_words)
        self.word_bits = word_bits
        members = {"weights": In(image_signature(word_bits)), "i": In(stream.Signature(x_shape)),
                   "o": Out(stream.Signature(x_shape)), "taken": In(len(self.output_group_words)),
                   "loading": Out(1)}
        for k in range(len(self.segments)):
            members[f"load{k}"] = Out(load_signature(word_bits))
        super().__init__(members)

    @property
    def words(self):
        """Words of the whole image."""
        return sum(self.segments)

    def elaborate(self, platform):
        m = Module()
        state = Signal(_LoaderState)
        entered, at_boundary = _groups(m, self.i.valid & self.i.ready, self.group_words, "in")
        left = [_groups(m, self.taken[k], words, f"out{k}")[0] for k, words in enumerate(self.output_group_words)]
        drained = Signal()
        m.d.sync += drained.eq(Cat(count == entered for count in left).all())

        hold = state != _LoaderState.RUN
        request = self.weights.valid & at_boundary
        m.d.comb += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid & ~hold & ~request),
                     self.i.ready.eq(self.o.ready & ~hold & ~request), self.loading.eq(hold)]

        segment = Signal(range(len(self.segments)))
        remaining = Signal(range(max(self.segments) + 1), init=self.segments[0])
        lengths = Array(Const(words, len(remaining)) for words in self.segments)
        taking = self.weights.valid & self.weights.ready
        last_word = (segment == len(self.segments) - 1) & (remaining == 1)
        m.d.comb += self.weights.ready.eq(state == _LoaderState.LOAD)
        with m.If(taking):
            with m.If(remaining == 1):
                m.d.sync += [segment.eq(Mux(last_word, 0, segment + 1)),
                             remaining.eq(lengths[Mux(last_word, 0, segment + 1)])]
            with m.Else():
                m.d.sync += remaining.eq(remaining - 1)
        word, word_valid, word_segment = Signal(self.word_bits), Signal(), Signal.like(segment)
        m.d.sync += [word.eq(self.weights.payload), word_valid.eq(taking), word_segment.eq(segment)]
        for k in range(len(self.segments)):
            port = getattr(self, f"load{k}")
            m.d.comb += [port.payload.eq(word), port.valid.eq(word_valid & (word_segment == k))]

        settle = Signal(range(self.relays + 1))  # cycles of SETTLE left beyond the first
        with m.Switch(state):
            with m.Case(_LoaderState.RUN):
                with m.If(request):
                    m.d.sync += state.eq(_LoaderState.DRAIN)
            with m.Case(_LoaderState.DRAIN):
                with m.If(drained):
                    m.d.sync += state.eq(_LoaderState.LOAD)
            with m.Case(_LoaderState.LOAD):
                with m.If(taking & last_word):
                    m.d.sync += [state.eq(_LoaderState.SETTLE), settle.eq(self.relays)]
            with m.Case(_LoaderState.SETTLE):
                with m.If(settle == 0):
                    m.d.sync += state.eq(_LoaderState.RUN)
                with m.Else():
                    m.d.sync += settle.eq(settle - 1)
        return m


class LoadRelay(wiring.Component):
    """One register stage on a load port, for a die crossing: a core's words reach it a cycle later.

    A load port is always ready (:func:`load_signature`), so no skid register and no ``ready``
    path are needed: the word and its valid bit are registered. Placed one in each die the port
    passes (as a stream's :class:`~cores.plumbing.RelayStation`), every load signal that crosses a
    die boundary goes from a register to a register. The relays of cores that share a path register
    the same words: synthesis merges them, so one word crosses each boundary.

    Parameters
    ----------
    word_bits : int
        Bits per image word.

    Ports
    -----
    i : In(load_signature(word_bits))
    o : Out(load_signature(word_bits))
    """

    def __init__(self, word_bits=WORD_BITS):
        super().__init__({"i": In(load_signature(word_bits)), "o": Out(load_signature(word_bits))})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        return m


def _groups(m, moved, group_words, name):
    """A count of the whole groups of ``group_words`` words that ``moved``, and whether the next word
    starts a group."""
    position = Signal(range(max(group_words, 2)), name=f"{name}_position")
    groups = Signal(32, name=f"{name}_groups")
    with m.If(moved):
        with m.If(position == group_words - 1):
            m.d.sync += [position.eq(0), groups.eq(groups + 1)]
        with m.Else():
            m.d.sync += position.eq(position + 1)
    return groups, position == 0

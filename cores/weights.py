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

import numpy as np
from amaranth.hdl import Mux, Signal
from amaranth.lib import stream

__all__ = ["WORD_BITS", "per_word", "words_per_row", "pack_rows", "unpack_rows", "image_bytes", "image_words",
           "load_signature", "segment_writes"]

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

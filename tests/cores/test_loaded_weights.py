"""Cores with runtime weights: the weight-image word layout, and vectors loaded through a core's ``load`` port."""

import numpy as np
import pytest

from cores.elementwise import AddConst, MulConst
from cores.fixed import Q
from cores.shared import module_name
from cores.testing import check_contract, run_streams
from cores.weights import WORD_BITS, image_bytes, image_words, pack_rows, unpack_rows, words_per_row


@pytest.mark.parametrize("elements, width", [(5, 18), (28, 18), (29, 18), (3, 27), (100, 32), (1, 512)])
def test_rows_round_trip_through_words_and_bytes(elements, width):
    rng = np.random.default_rng(elements)
    rows = rng.integers(-(1 << (width - 1)), 1 << (width - 1), size=(7, elements), dtype=np.int64) \
        if width < 64 else np.array([[(1 << 511) - 3]] * 7, dtype=object)
    words = pack_rows(rows, width)
    assert len(words) == 7 * words_per_row(elements, width)
    assert all(0 <= word < 1 << WORD_BITS for word in words)
    data = image_bytes(words)
    assert len(data) == len(words) * WORD_BITS // 8 and image_words(data) == words
    if width < 64:
        np.testing.assert_array_equal(unpack_rows(words, elements, width), rows)


def test_word_layout_is_the_documented_one():
    """Element j*E + e of a row sits in bits e*w.. of word j of the row, E = 512 // w, little-endian bytes."""
    words = pack_rows([[1, -1] + [0] * 26 + [5]], 18)
    assert words == [1 | (((1 << 18) - 1) << 18), 5]
    assert image_bytes(words)[:3] == bytes([1, 0, 0xFC])


@pytest.mark.parametrize("core", [AddConst, MulConst])
@pytest.mark.parametrize("lanes", [1, 3])
def test_loaded_vector_meets_the_stream_like_its_model(core, lanes):
    """The vector comes through ``load`` (no initial contents); every beat meets its element in every
    lane, bit-exact with the model, under random stalls; the contract holds."""
    rng = np.random.default_rng(lanes)
    values = rng.uniform(-1.5, 1.5, 37)
    hardware = core(Q(3, 12), Q(4, 14), np.zeros(37), bound=1.5, lanes=lanes)
    model = core.model(Q(3, 12), Q(4, 14), values, bound=1.5, lanes=lanes)
    words = pack_rows(hardware.weight_rows(values), hardware._const_format.width)
    tokens = rng.integers(-2 ** 14, 2 ** 14, size=(2 * 37 + 5, lanes))
    expected = model.reference(tokens.reshape(-1)).reshape(-1, lanes)
    run = run_streams(hardware, {"a": [tuple(t) for t in tokens]}, {"o": len(tokens)}, load=words,
                      valid_prob=0.7, ready_prob=0.6, seed=lanes)
    np.testing.assert_array_equal(np.array(run.outputs["o"]), expected)
    check_contract(hardware.contract, run_streams(hardware, {"a": [tuple(t) for t in tokens]}, {"o": len(tokens)},
                                                  load=words))


def test_loaded_values_are_not_hardware():
    """Two cores that differ only in the values their models compute with are one module."""
    first = MulConst(Q(3, 12), Q(4, 14), np.zeros(16), bound=2.0)
    second = MulConst(Q(3, 12), Q(4, 14), np.ones(16), bound=2.0)
    constant = MulConst(Q(3, 12), Q(4, 14), np.ones(16))
    assert module_name("m", first) == module_name("m", second) != module_name("m", constant)
    assert first.memories[0].initialized is False

"""Cores with runtime weights: the weight-image word layout, vectors loaded through a core's ``load`` port, and
the loader that feeds a design's cores between batches."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from cores.elementwise import AddConst, MulConst
from cores.matmul import MatVec
from cores.fixed import Q
from cores.shared import module_name
from cores.testing import check_contract, run_streams
from cores.weights import (LOAD_LATENCY, LOAD_START, WORD_BITS, LoadRelay, WeightLoader, image_bytes, image_words, pack_rows, unpack_rows,
                           words_per_row)


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
    words = hardware.weight_layout.pack(values)
    tokens = rng.integers(-2 ** 14, 2 ** 14, size=(2 * 37 + 5, lanes))
    expected = model.reference(tokens.reshape(-1)).reshape(-1, lanes)
    run = run_streams(hardware, {"a": [tuple(t) for t in tokens]}, {"o": len(tokens)}, load=words,
                      valid_prob=0.7, ready_prob=0.6, seed=lanes)
    np.testing.assert_array_equal(np.array(run.outputs["o"]), expected)
    check_contract(hardware.contract, run_streams(hardware, {"a": [tuple(t) for t in tokens]}, {"o": len(tokens)},
                                                  load=words))


@pytest.mark.parametrize("channels", [("forward",), ("forward", "transpose"), ("transpose", "forward")])
@pytest.mark.parametrize("parallel, lanes", [(3, 2), (40, 1)])
def test_loaded_matrix_computes_like_its_model(channels, parallel, lanes):
    """The banks come through ``load`` (P = 40 weights of 18 bits take two words an address, P = 3
    one), then both channels compute bit-exact with the model under random stalls."""
    rng = np.random.default_rng(parallel)
    weights = rng.uniform(-0.5, 0.5, (40, 37))
    hardware = MatVec(np.zeros_like(weights), Q(2, 14), Q(4, 14), channels=channels, parallel=parallel, lanes=lanes,
                      weight_bound=0.5)
    model = MatVec.model(weights, Q(2, 14), Q(4, 14), channels=channels, parallel=parallel, lanes=lanes,
                         weight_bound=0.5)
    rows = hardware.weight_layout.raw_rows(weights)
    padded_rows, padded_columns = hardware.padded_shape
    assert rows.shape == (padded_rows * padded_columns // hardware.parallel, hardware.parallel)
    words = hardware.weight_layout.pack(weights)
    assert len(words) == hardware.weight_layout.words == len(rows) * (2 if hardware.parallel > 28 else 1)
    inputs, outputs, streams = {}, {}, []
    for k in range(len(channels)):
        n_in, n_out = hardware.lengths(k)
        x = rng.integers(-2 ** 14, 2 ** 14, size=(3 * n_in, lanes))
        inputs[f"x{k}"], outputs[f"o{k}"] = [tuple(t) for t in x], 3 * n_out
        streams.append(x.reshape(-1))
    run = run_streams(hardware, inputs, outputs, load=words, valid_prob=0.8, ready_prob=0.7, seed=lanes)
    expected = model.reference(*streams)
    for k, reference in enumerate(expected if len(channels) > 1 else [expected]):
        np.testing.assert_array_equal(np.array(run.outputs[f"o{k}"]).reshape(-1), reference.reshape(-1))
    if len(channels) == 1:
        check_contract(hardware.contract, run_streams(hardware, inputs, outputs, load=words), output="o0")


def test_loaded_values_are_not_hardware():
    """Two cores that differ only in the values their models compute with are one module."""
    first = MulConst(Q(3, 12), Q(4, 14), np.zeros(16), bound=2.0)
    second = MulConst(Q(3, 12), Q(4, 14), np.ones(16), bound=2.0)
    constant = MulConst(Q(3, 12), Q(4, 14), np.ones(16))
    assert module_name("m", first) == module_name("m", second) != module_name("m", constant)
    assert first.memories[0].initialized is False
    matrices = [MatVec(w, Q(2, 14), Q(4, 14), parallel=4, weight_bound=1.0) for w in (np.zeros((8, 8)), np.eye(8))]
    assert module_name("m", matrices[0]) == module_name("m", matrices[1])
    assert matrices[0].memories[0].initialized is False


class _Delay(wiring.Component):
    """A stand-in design: a WeightLoader before a FIFO whose every second word is an output word."""

    def __init__(self, segments, relays=0):
        self.loader = WeightLoader(segments, 8, group_words=4, output_group_words=[2], word_bits=16, relays=relays)
        super().__init__({"weights": In(stream.Signature(16)), "x": In(stream.Signature(8)),
                          "y": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.loader = loader = self.loader
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=8, depth=16)
        wiring.connect(m, wiring.flipped(self.weights), loader.weights)
        wiring.connect(m, wiring.flipped(self.x), loader.i)
        m.d.comb += [queue.w_data.eq(loader.o.payload), queue.w_en.eq(loader.o.valid), loader.o.ready.eq(queue.w_rdy),
                     self.y.payload.eq(queue.r_data), self.y.valid.eq(queue.r_rdy), queue.r_en.eq(self.y.ready)]
        second = Signal()
        with m.If(self.y.valid & self.y.ready):
            m.d.sync += second.eq(~second)
        m.d.comb += loader.taken.eq(self.y.valid & self.y.ready & second)
        return m


@pytest.mark.parametrize("relays", [0, 2])
def test_loader_never_mixes_a_load_with_a_run(relays):
    """Image, batch, image, batch: each segment gets its words in order; a load starts only once every
    sample taken has left, and no sample enters before its last word; the next sample comes
    words + LOAD_LATENCY cycles after the first word was taken, one more per load relay its words
    pass, and an idle design takes the first word LOAD_START cycles after it was offered."""
    segments = [3, 1, 5]
    design = _Delay(segments, relays)
    loader = design.loader
    plan = [("weights", list(range(100, 109))), ("x", list(range(1, 9))),
            ("weights", list(range(150, 159))), ("x", list(range(21, 29)))]
    moved = {"weights": [], "x": [], "y": []}
    loads = {k: [] for k in range(len(segments))}

    async def bench(ctx):
        cycle = 0
        ctx.set(design.y.ready, 1)

        async def clock():
            nonlocal cycle
            if ctx.get(design.y.valid):
                moved["y"].append(cycle)
            for k in loads:
                port = getattr(loader, f"load{k}")
                if ctx.get(port.valid):
                    loads[k].append(ctx.get(port.payload))
            await ctx.tick()
            cycle += 1

        for name, words in plan:
            port = getattr(design, name)
            for word in words:
                ctx.set(port.valid, 1)
                ctx.set(port.payload, word)
                while not ctx.get(port.ready):
                    await clock()
                moved[name].append(cycle)
                await clock()
            ctx.set(port.valid, 0)
        for _ in range(20):
            await clock()

    simulator = Simulator(design)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert loads == {0: [100, 101, 102, 150, 151, 152], 1: [103, 153], 2: [104, 105, 106, 107, 108, 154, 155, 156,
                                                                        157, 158]}
    first, second = moved["x"][:8], moved["x"][8:]
    assert moved["weights"][0] == LOAD_START and first[0] == LOAD_START + sum(segments) + LOAD_LATENCY + relays
    assert second[0] == moved["weights"][9] + sum(segments) + LOAD_LATENCY + relays
    assert moved["weights"][9] > moved["y"][7] >= first[-1]
    assert second[0] > moved["weights"][-1]
    assert len(moved["y"]) == 16


@pytest.mark.parametrize("seed", range(4))
def test_an_image_offered_mid_batch_waits_for_the_design_to_empty(seed):
    """Samples and images offered independently, with random valid-gaps and back-pressure, images
    offered while samples are in flight and in the middle of a group: every word of an image is
    taken while the design holds no sample, no sample enters from an image's first word until its
    last word's writes land, no load splits a group, and every sample and image word moves once,
    in order."""
    segments, group = [3, 1, 5], 4
    design = _Delay(segments)
    loader = design.loader
    rng = np.random.default_rng(seed)
    samples = list(range(1, 4 * 12 + 1))
    images = [list(range(100 + 10 * k, 100 + 10 * k + sum(segments))) for k in range(4)]
    taken = {"x": [], "weights": [], "y": []}
    offered = []
    loads = {k: [] for k in range(len(segments))}

    async def bench(ctx):
        async def clock():
            for k in loads:
                port = getattr(loader, f"load{k}")
                if ctx.get(port.valid):
                    loads[k].append(ctx.get(port.payload))
            await ctx.tick()

        pending = {"x": list(samples), "weights": []}
        waits = list(rng.integers(3, 40, size=len(images)))
        for cycle in range(2000):
            if not pending["weights"] and waits:
                waits[0] -= 1
                if waits[0] == 0:
                    waits.pop(0)
                    pending["weights"] = list(images[len(offered)])
                    offered.append(cycle)
            for name in ("x", "weights"):
                port = getattr(design, name)
                if not ctx.get(port.valid) and pending[name] and rng.random() < 0.7:
                    ctx.set(port.payload, pending[name][0])
                    ctx.set(port.valid, 1)
            ctx.set(design.y.ready, int(rng.random() < 0.7))
            if ctx.get(design.y.valid) and ctx.get(design.y.ready):
                taken["y"].append((cycle, ctx.get(design.y.payload)))
            moved = [name for name in ("x", "weights")
                     if ctx.get(getattr(design, name).valid) and ctx.get(getattr(design, name).ready)]
            for name in moved:
                taken[name].append((cycle, pending[name].pop(0)))
            await clock()
            for name in moved:
                ctx.set(getattr(design, name).valid, 0)
            if not waits and not pending["weights"] and len(taken["y"]) == len(samples):
                break
        for _ in range(1 + LOAD_LATENCY):
            await clock()

    simulator = Simulator(design)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()

    assert [word for _, word in taken["x"]] == samples == [word for _, word in taken["y"]]
    assert [word for _, word in taken["weights"]] == [word for image in images for word in image]
    for k, words in loads.items():
        start = sum(segments[:k])
        assert words == [word for image in images for word in image[start:start + segments[k]]]
    x_cycles, y_cycles = [cycle for cycle, _ in taken["x"]], [cycle for cycle, _ in taken["y"]]
    in_flight = [sum(c < cycle for c in x_cycles) - sum(c < cycle for c in y_cycles) for cycle in offered]
    assert any(in_flight), "no image was offered while samples were in flight"
    for image in range(len(images)):
        words = [cycle for cycle, _ in taken["weights"][image * sum(segments):(image + 1) * sum(segments)]]
        entered = sum(cycle < words[0] for cycle in x_cycles)
        assert entered % group == 0, "a load split a group of samples"
        assert sum(cycle < words[0] for cycle in y_cycles) == entered, "a word was taken with samples in flight"
        assert not [cycle for cycle in x_cycles if words[0] <= cycle < words[-1] + 1 + LOAD_LATENCY], \
            "a sample entered during a load"


@pytest.mark.parametrize("seed", range(3))
def test_a_load_relay_passes_every_word_once_a_cycle_later(seed):
    """Words offered with random valid-gaps (a load port is always ready, so there is no
    back-pressure): each comes out exactly once, in order, in the cycle after it went in."""
    relay = LoadRelay(16)
    rng = np.random.default_rng(seed)
    offered = [(int(rng.random() < 0.6), int(rng.integers(0, 1 << 16))) for _ in range(200)]
    seen = []

    async def bench(ctx):
        for cycle, (valid, word) in enumerate([*offered, (0, 0)]):
            ctx.set(relay.i.valid, valid)
            ctx.set(relay.i.payload, word)
            if ctx.get(relay.o.valid):  # what the relay registered in the cycle before
                seen.append((cycle, ctx.get(relay.o.payload)))
            await ctx.tick()

    simulator = Simulator(relay)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert seen == [(cycle + 1, word) for cycle, (valid, word) in enumerate(offered) if valid]

# amaranth: UnusedElaboratable=no
# (Parts are built to be keyed, and shared parts stand for modules converted once: not every one is elaborated.)
"""Hierarchical Verilog (``cores.shared``): one module per distinct part, deterministic, and the same
hardware as amaranth's flat conversion."""

import re

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

import sim
from cores import AddConst, Cos, Fork, Gather, MatVec, MulConst, Pacer, Q, Scale, Sin, StreamFIFO, Sum
from cores.ports import lanes_signature
from cores.shared import Shared, convert, module_name

FMT = Q(4, 12)


def shared(part):
    return Shared(part, module_name(type(part).__name__.lower(), part))


class Chain(wiring.Component):
    """``x`` through FIFOs of the given depths, in order, to ``y``."""

    def __init__(self, depths):
        self.depths = depths
        super().__init__({"x": In(lanes_signature(FMT)), "y": Out(lanes_signature(FMT))})

    def elaborate(self, platform):
        m = Module()
        source = wiring.flipped(self.x)
        for k, depth in enumerate(self.depths):
            fifo = StreamFIFO(FMT, depth)
            m.submodules[f"fifo{k}"] = shared(fifo)
            wiring.connect(m, source, fifo.i)
            source = fifo.o
        wiring.connect(m, source, wiring.flipped(self.y))
        return m


class Pipeline(wiring.Component):
    """``x`` through a FIFO and a matrix-vector product, forked to two equal FIFOs, ``y0`` and ``y1``."""

    def __init__(self, weights, parallel):
        self.matvec = MatVec(weights, FMT, FMT, parallel=parallel)
        super().__init__({"x": In(lanes_signature(FMT)), "y0": Out(lanes_signature(FMT)),
                          "y1": Out(lanes_signature(FMT))})

    def elaborate(self, platform):
        m = Module()
        source = StreamFIFO(FMT, 4)
        fork = Fork(FMT, 2)
        sinks = [StreamFIFO(FMT, 5) for _ in range(2)]
        for name, part in [("source", source), ("matvec", self.matvec), ("fork", fork),
                           ("sink0", sinks[0]), ("sink1", sinks[1])]:
            m.submodules[name] = shared(part)
        wiring.connect(m, wiring.flipped(self.x), source.i)
        wiring.connect(m, source.o, self.matvec.x0)
        wiring.connect(m, self.matvec.o0, fork.i)
        for k, sink in enumerate(sinks):
            wiring.connect(m, getattr(fork, f"o{k}"), sink.i)
            wiring.connect(m, sink.o, wiring.flipped(getattr(self, f"y{k}")))
        return m


def modules(text):
    return re.findall(r"^module (\S+)\(", text, re.M)


def instances(text, module):
    return len(re.findall(rf"^\s+{module} ", text, re.M))


def test_equal_parts_are_one_module_and_different_parts_two():
    text = convert(Chain([4, 4, 5, 4]), name="chain")
    fifos = [name for name in modules(text) if name.startswith("streamfifo_")]
    assert len(fifos) == 2
    assert sorted(instances(text, name) for name in fifos) == [1, 3]
    assert "chain" in modules(text)


def test_the_same_design_gives_the_same_bytes():
    rng = np.random.default_rng(1)
    weights = rng.uniform(-1, 1, (6, 7))
    assert convert(Pipeline(weights, 5)) == convert(Pipeline(weights.copy(), 5))


def test_keys_cover_values_not_identities():
    weights = np.arange(12.0).reshape(3, 4) / 16
    first, same, other = (MatVec(w, FMT, FMT, parallel=2) for w in (weights, weights.copy(), weights[::-1]))
    assert module_name("matvec", first) == module_name("matvec", same) != module_name("matvec", other)
    assert module_name("fifo", StreamFIFO(FMT, 4)) != module_name("fifo", StreamFIFO(FMT, 5))
    with pytest.raises(TypeError):
        module_name("part", np.sin)


def test_keys_do_not_change_on_elaboration():
    # Some cores keep signals or memories they build in elaborate(); a design elaborated before
    # (a resource estimate, a flat conversion) must get the same module names.
    A = Q(3, 10)
    parts = [AddConst(A, A, [0.5, -0.25]), MulConst(A, A, [0.5, 1.5]), Scale(A, A, 0.75), Sin(A, A),
             Cos(A, A, scale=2.0), Sum(A, A, 3), Gather([(A, 2), (A, 3)], A, [(0, 1), (1, 2), 0.5]),
             Pacer(A, 2, 5), MatVec(np.eye(3), A, A, channels=("forward", "transpose"), parallel=2)]
    before = [module_name("part", part) for part in parts]
    for part in parts:
        Fragment.get(part, None)
    assert [module_name("part", part) for part in parts] == before


def test_other_platforms_see_the_part_itself():
    fifo = StreamFIFO(FMT, 4)
    assert fifo in Fragment.get(shared(fifo), None).origins


@pytest.fixture(scope="module")
def pipeline_runs():
    """The pipeline in Verilator, converted flat and hierarchically, with gaps and back-pressure."""
    rng = np.random.default_rng(3)
    weights = rng.uniform(-1, 1, (6, 7))
    xs = FMT.quantize(rng.uniform(-4, 4, (3, 7)))
    words = [int(v) for v in FMT.to_unsigned(xs.reshape(-1))]
    runs = {}
    for kind, text in [("flat", verilog.convert(Pipeline(weights, 5), name="top", emit_src=False)),
                       ("shared", convert(Pipeline(weights, 5)))]:
        runs[kind] = sim.run_verilog(text, inputs={"x": words}, outputs={"y0": 18, "y1": 18},
                                     valid_prob=0.6, ready_prob=0.5, seed=7)
    return weights, xs, runs


def test_shared_verilog_runs_like_the_flat_verilog(pipeline_runs):
    weights, xs, runs = pipeline_runs
    flat, hierarchical = runs["flat"], runs["shared"]
    assert hierarchical.outputs == flat.outputs
    assert (hierarchical.accepts, hierarchical.emits, hierarchical.cycles) == (flat.accepts, flat.emits, flat.cycles)
    expected = MatVec.model(weights, FMT, FMT, parallel=5).reference(xs).reshape(-1)
    for port in ("y0", "y1"):
        assert np.array_equal(FMT.from_unsigned(hierarchical.outputs[port]), expected)


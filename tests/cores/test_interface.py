# amaranth: UnusedElaboratable=no
# (Only some of the tests elaborate the cores they build.)
"""Every core has one interface (``cores.model``): ``contract``, ``reference(*inputs)`` with one raw
array per input port, ``multipliers`` and ``memories``; its reference is what its hardware gives;
a modelled core's model has the same interface with no amaranth component built."""

import inspect

import numpy as np
import pytest
from amaranth.lib import wiring
from amaranth.sim import Simulator

import cores
from bench.registry import nonlinear_cores, small_formats
from cores import Q, TimingContract
from cores.model import ModelledComponent, Storage
from cores.multiply import Multiplier
from cores.testing import check_contract, run_streams

A, B, OUT = Q(4, 8), Q(3, 6), Q(5, 9)


def arguments(*args, **kwargs):
    return args, kwargs


# The arguments of a small instance of every core class that cores exports, keyed by the class
# name, and of lane variants, keyed by the class name and a label after a space.
CORES = {
    "Add": arguments(A, B, OUT, lanes=2),
    "Sub": arguments(A, B, OUT),
    "Mul": arguments(A, B, OUT, lanes=2),
    "Neg": arguments(A, OUT),
    "Scale": arguments(A, OUT, -1.7),
    "MulAdd": arguments(A, B, A, OUT),
    "AddConst": arguments(A, OUT, [0.5, -1.25, 2.0, 3.0], lanes=2),
    "MulConst": arguments(A, OUT, [0.5, -1.25, 2.0]),
    "Sin": arguments(A, Q(2, 10), scale=3.0, lanes=2),
    "Cos": arguments(A, Q(2, 10), scale=3.0),
    "Tanh": arguments(A, Q(2, 10)),
    "Sigmoid": arguments(A, Q(2, 10), scale=0.5),
    "Softplus": arguments(A, OUT),
    "Exp": arguments(A, Q(8, 8)),
    "Sqrt": arguments(A, OUT, scale=2.0),
    "Relu": arguments(A, OUT, scale=3.0),
    "Step": arguments(A, OUT),
    "Abs": arguments(A, OUT, scale=-1.5),
    "MatVec": arguments(np.linspace(-1, 1, 12).reshape(3, 4), A, OUT, channels=("forward", "transpose"),
                        parallel=2, lanes=2),
    "Pacer": arguments(A, 3, 7),
    "Pacer lanes=3": arguments(A, 2, 8, lanes=3),
    "Fork": arguments(A, 3, lanes=2),
    "Gather": arguments([(A, 3), (B, 2)], OUT, [(1, 0), 0.75, (0, 2), (0, 0), (1, 1), (0, 2)]),
    "Gather lanes=2": arguments([(A, 3), (B, 2)], OUT, [(1, 0), 0.75, (0, 2), (0, 0), (1, 1), (0, 2)], lanes=2),
    "LaneConverter": arguments(A, 4, 2),
    "LaneSerializer": arguments(A, 3, 2),
    "StreamFIFO": arguments(A, 5, lanes=2),
    "RelayStation": arguments(A, lanes=2),
    "Sum": arguments(A, OUT, 3, lanes=2),
    "Accumulate": arguments(A, OUT, 3, lanes=2),
}
# The registry's nonlinear cores that have no arguments above, at default formats.
REGISTERED = {cls.__name__: cls for cls in nonlinear_cores()}
CORES.update({name: arguments(A, Q.parse(small_formats(cls)[1]), scale=0.75)
              for name, cls in REGISTERED.items() if name not in CORES})


def core_class(name):
    base = name.partition(" ")[0]
    return REGISTERED[base] if base in REGISTERED else getattr(cores, base)


def build(name, model=False):
    cls = core_class(name)
    args, kwargs = CORES[name]
    if model:
        return cls.model(*args, **kwargs)
    return cls(*args, **kwargs)


def stream_ports(core, flow):
    """``{name: (element width, lanes)}`` of the core's stream ports of ``flow``, in port order."""
    ports = {}
    for name, member in core.signature.members.items():
        if member.is_signature and member.flow == flow:
            layout = member.signature.members["payload"].shape
            ports[name] = (layout.elem_shape.width, layout.length)
    return ports


def rates(core, port):
    """Tokens per firing that input ``port`` takes, and that the output it feeds emits."""
    contract = next(actor.contract for inputs, _, actor in actors(core) if port in inputs)
    return contract.consumes[port], contract.produces


def random_raw(rng, width, shape):
    return rng.integers(-(1 << (width - 1)), 1 << (width - 1), shape).astype(object)


def test_every_exported_and_every_registered_core_is_checked():
    exported = {name for name in cores.__all__ if isinstance(getattr(cores, name), type)
                and issubclass(getattr(cores, name), wiring.Component)}
    assert exported | set(REGISTERED) == {core_class(name).__name__ for name in CORES}


@pytest.mark.parametrize("name", sorted(CORES))
def test_core_has_the_interface(name):
    core = build(name)
    assert isinstance(core.contract, TimingContract)
    assert all(isinstance(multiplier, Multiplier) for multiplier in core.multipliers)
    assert all(isinstance(memory, Storage) for memory in core.memories)
    # one raw array per input port, nothing else
    signature = inspect.signature(core.reference)
    signature.bind(*range(len(stream_ports(core, wiring.In))))
    assert all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in signature.parameters.values())


@pytest.mark.parametrize("name", sorted(CORES))
def test_reference_is_what_the_hardware_gives(name):
    core = build(name)
    rng = np.random.default_rng(sorted(CORES).index(name))
    inputs, outputs, firings = {}, {}, 4
    for port, (width, lanes) in stream_ports(core, wiring.In).items():
        inputs[port] = random_raw(rng, width, (firings * rates(core, port)[0], lanes))
    sources = {output: ports[0] for ports, output, _ in actors(core)}
    for port in stream_ports(core, wiring.Out):
        outputs[port] = firings * rates(core, sources.get(port, next(iter(inputs))))[1]
    run = run_streams(core, {port: [tuple(beat) for beat in raw] for port, raw in inputs.items()}, outputs,
                      valid_prob=0.7, ready_prob=0.6, seed=1)
    expected = core.reference(*(raw.reshape(-1) for raw in inputs.values()))
    expected = expected if len(outputs) > 1 else (expected,)
    for port, reference in zip(outputs, expected):
        assert [value for beat in run.outputs[port] for value in beat] == [int(v) for v in reference], port


@pytest.mark.parametrize("name", sorted(name for name in CORES if issubclass(core_class(name), ModelledComponent)))
def test_model_is_the_core_without_hardware(name, monkeypatch):
    core = build(name)
    rng = np.random.default_rng(5)
    inputs = [random_raw(rng, width, (2, 6 * lanes * rates(core, port)[0]))
              for port, (width, lanes) in stream_ports(core, wiring.In).items()]

    def no_component(*args, **kwargs):
        raise AssertionError("a model built an amaranth component")

    monkeypatch.setattr(wiring.Component, "__init__", no_component)
    model = build(name, model=True)
    assert not isinstance(model, wiring.Component)
    assert model.contract == core.contract
    assert model.memories == core.memories
    assert [m.dsps for m in model.multipliers] == [m.dsps for m in core.multipliers]
    got, expected = model.reference(*inputs), core.reference(*inputs)
    for a, b in zip(got if isinstance(got, tuple) else (got,), expected if isinstance(expected, tuple) else (expected,)):
        assert np.array_equal(a, b)


WIDE, WIDE_OUT, ECP5_DSP = Q(6, 20), Q(8, 20), (18, 18)
# Multiplying cores whose products do not fit one 18 × 18 multiplier, built for an ECP5's.
SPLIT = {
    "Mul": arguments(WIDE, WIDE, WIDE_OUT, dsp_shape=ECP5_DSP),
    "MulAdd": arguments(WIDE, WIDE, WIDE, WIDE_OUT, dsp_shape=ECP5_DSP),
    "Scale": arguments(WIDE, WIDE_OUT, -1.7, const_width=24, dsp_shape=ECP5_DSP),
    "MulConst": arguments(WIDE, WIDE_OUT, [0.5, -1.25, 2.0], const_width=24, dsp_shape=ECP5_DSP),
    "Sin": arguments(WIDE, Q(2, 22), scale=3.0, dsp_shape=ECP5_DSP),
    "Tanh": arguments(WIDE, Q(2, 22), dsp_shape=ECP5_DSP),
}


@pytest.mark.parametrize("name", sorted(SPLIT))
def test_products_split_for_the_device_multiplier_keep_values_and_contract(name):
    args, kwargs = SPLIT[name]
    core = getattr(cores, name)(*args, **kwargs)
    default = getattr(cores, name).model(*args, **{k: v for k, v in kwargs.items() if k != "dsp_shape"})
    assert all(multiplier.dsp_shape == ECP5_DSP for multiplier in core.multipliers)
    assert sum(m.dsps for m in core.multipliers) > sum(m.dsps for m in default.multipliers)
    rng = np.random.default_rng(7)
    ports = stream_ports(core, wiring.In)
    inputs = {port: random_raw(rng, width, (12, lanes)) for port, (width, lanes) in ports.items()}
    feed = {port: [tuple(beat) for beat in raw] for port, raw in inputs.items()}
    run = run_streams(core, feed, {"o": 12}, valid_prob=0.7, ready_prob=0.6, seed=3)
    expected = core.reference(*(raw.reshape(-1) for raw in inputs.values()))
    assert [value for beat in run.outputs["o"] for value in beat] == [int(v) for v in expected]
    assert list(expected) == list(default.reference(*(raw.reshape(-1) for raw in inputs.values())))
    check_contract(core.contract, run_streams(getattr(cores, name)(*args, **kwargs), feed, {"o": 12},
                                              valid_prob=0.6, ready_prob=1.0, seed=4))


def actors(core):
    """``(input ports, output port, actor)`` of each part of ``core`` with one output: the core, or
    each channel of a MatVec."""
    if isinstance(core, cores.MatVec):
        return [(channel.inputs, channel.output, channel) for channel in map(core.channel, range(len(core.channels)))]
    return [(tuple(stream_ports(core, wiring.In)), "o", core)]


@pytest.mark.parametrize("name", sorted(name for name in CORES if name != "Fork"))
def test_cycle_model_is_the_hardware(name):
    """Under random valid-gaps and back-pressure, each part's ``cycle_model`` takes inputs and offers
    outputs in the cycles the hardware does."""
    core = build(name)
    firings = 6
    parts = [(inputs, output, actor.cycle_model(firings), {p: firings * actor.contract.consumes[p] for p in inputs})
             for inputs, output, actor in actors(core)]
    rng = np.random.default_rng(sorted(CORES).index(name))
    valid_prob = 1.0 if name.startswith("Pacer") else 0.7  # a pacer's model is fed by an always-valid source

    async def testbench(ctx):
        for cycle in range(600):
            for inputs, output, model, left in parts:
                offered = {port: bool(left[port] and rng.random() < valid_prob) for port in inputs}
                out_ready = bool(rng.random() < 0.6)
                for port in inputs:
                    ctx.set(getattr(core, port).valid, offered[port])
                    ctx.set(getattr(core, port).payload.as_value(), int(rng.integers(1 << 8)))
                ctx.set(getattr(core, output).ready, out_ready)
                taken = set(model.ready(offered, out_ready))
                assert {p for p in inputs if offered[p] and ctx.get(getattr(core, p).ready)} == taken, f"cycle {cycle}"
                assert bool(ctx.get(getattr(core, output).valid)) == model.out_valid, f"cycle {cycle}: {output} valid"
                model.clock(bool(taken), out_ready)
                for port in taken:
                    left[port] -= 1
            await ctx.tick()

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()

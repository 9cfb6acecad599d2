"""Every core's generated Verilog, run in Verilator under cocotb (``sim.run_verilog``).

The Amaranth-simulator tests of each core check its logic; these check that the Verilog Amaranth
emits for it behaves the same. All cores, at small parameters, sit side by side in one wrapper
component, so there is a single Verilator build (cached by ``sim``) and every port streams at
once in one simulation. Outputs are compared bit for bit with each core's model (its
``reference()`` where it has one, else a numpy model of the documented arithmetic), under random
valid-gaps and back-pressure; with an always-ready consumer every accept and emit cycle must be
the one the core's :class:`~cores.TimingContract` predicts.

The set also holds multiplying cores built for the ECP5's MULT18X18D and the UltraScale+'s DSP48E2
primitives (:mod:`cores.dsp`), and a table core built of the ECP5's DP16KD block ROM
(:mod:`cores.rom`): the Verilog instantiates the primitives, which Verilator simulates by
their models in ``sim/primitives/``, so those models are checked bit for bit and cycle for cycle
here too.
"""

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

import sim
from bench.registry import float64, missing, small_formats
from cores import (Abs, Accumulate, Add, AddConst, Cos, Exp, Fork, Gather, LaneConverter, MatVec, Mul, MulAdd,
                   MulConst, Neg, Pacer, Q, RelayStation, Relu, Scale, Sigmoid, Sin, Step, StreamFIFO, Sub, Sum,
                   Tanh)
from cores import shared
from cores.dsp import DSP48E2_REGISTERED, MULT18X18D_REGISTERED
from cores.elementwise import constant_format
from cores.fixed import convert_raw
from cores.pipelining import UNPIPELINED, Pipelining
from cores.rom import DP16KD_REGISTERED
from cores.testing import pack_lanes, unpack_lanes

A, B = Q(4, 8), Q(3, 6)
RNG_SEED = 2024


class CoreSet(wiring.Component):
    """Several cores side by side; port ``p`` of the core named ``name`` is this component's ``name_p``."""

    def __init__(self, cores):
        self.cores = dict(cores)
        members = {f"{name}_{port}": member for name, core in self.cores.items()
                   for port, member in core.signature.members.items()}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for name, core in self.cores.items():
            m.submodules[name] = core
            for port, member in core.signature.members.items():
                outer, inner = getattr(self, f"{name}_{port}"), getattr(core, port)
                if member.is_signature:
                    wiring.connect(m, wiring.flipped(outer), inner)
                elif member.flow == wiring.Out:
                    m.d.comb += outer.eq(inner)
                else:
                    m.d.comb += inner.eq(outer)
        return m


def fixed(raw, frac_bits, out, **kwargs):
    """Raw values with ``frac_bits`` fractional bits, rounded to ``out``: ``(raw, overflowed)``."""
    return convert_raw(np.asarray(raw, dtype=object), Q(64, frac_bits), out, **kwargs)


def aligned(raw, fmt, frac_bits):
    return np.asarray(raw, dtype=object) * (1 << (frac_bits - fmt.frac_bits))


class Case:
    """One core in the set: its input tokens and a model giving the expected output tokens.

    ``inputs`` maps a port to an object array of raw values, shape ``(tokens, lanes)``; ``model``
    returns ``({output port: raw array (tokens, lanes)}, overflowed)``.
    """

    def __init__(self, core, inputs, model, *, error_bound=None):
        self.core = core
        self.inputs = inputs
        self.model = model
        self.error_bound = error_bound

    def contracts(self):
        """``(contract, output port)`` pairs; one per MatVec channel."""
        if isinstance(self.core, MatVec):
            channels = map(self.core.channel, range(len(self.core.channels)))
            return [(channel.contract, channel.output) for channel in channels]
        outputs = [port for port, member in self.core.signature.members.items()
                   if member.is_signature and member.flow == wiring.Out]
        return [(self.core.contract, port) for port in outputs]


def raw_tokens(rng, fmt, tokens, lanes=1):
    return rng.integers(fmt.min_raw, fmt.max_raw + 1, size=(tokens, lanes)).astype(object)


def every_value(fmt):
    return np.arange(fmt.min_raw, fmt.max_raw + 1).astype(object).reshape(-1, 1)


def elementwise_cases(rng):
    out = Q(4, 6)
    a, b, c = raw_tokens(rng, A, 150, 2), raw_tokens(rng, B, 150, 2), raw_tokens(rng, A, 150, 2)
    scale = 1.7
    scale_format = constant_format([scale], 18)
    scale_raw = scale_format.quantize([scale])[0]
    bias = rng.uniform(-3, 3, 6)
    bias_format = constant_format(bias, 32)
    gain = rng.uniform(-2, 2, 6)
    gain_format = constant_format(gain, 18)
    frac = max(A.frac_bits, B.frac_bits)
    product_frac = A.frac_bits + B.frac_bits

    def repeat(values, fmt, tokens, lanes):
        return np.resize(fmt.quantize(values), tokens * lanes).reshape(tokens, lanes)

    def single(output):
        return lambda: ({"o": output[0]}, bool(np.any(output[1])))

    return {
        "add": Case(Add(A, B, out, lanes=2), {"a": a, "b": b},
                    single(fixed(aligned(a, A, frac) + aligned(b, B, frac), frac, out))),
        "sub": Case(Sub(A, B, out, lanes=2), {"a": a, "b": b},
                    single(fixed(aligned(a, A, frac) - aligned(b, B, frac), frac, out))),
        "mul": Case(Mul(A, B, out, lanes=2), {"a": a, "b": b}, single(fixed(a * b, product_frac, out))),
        "neg": Case(Neg(A, A), {"a": a[:, :1]}, single(fixed(-a[:, :1], A.frac_bits, A))),
        "scale": Case(Scale(A, out, scale), {"a": a[:, :1]},
                      single(fixed(a[:, :1] * scale_raw, A.frac_bits + scale_format.frac_bits, out))),
        "muladd": Case(MulAdd(A, B, A, out, lanes=2), {"a": a, "b": b, "c": c},
                       single(fixed(a * b + aligned(c, A, product_frac), product_frac, out))),
        "addconst": Case(AddConst(A, out, bias, lanes=2), {"a": a},
                         single(fixed(aligned(a, A, bias_format.frac_bits)
                                      + repeat(bias, bias_format, 150, 2), bias_format.frac_bits, out))),
        "mulconst": Case(MulConst(A, out, gain, lanes=2), {"a": a},
                         single(fixed(a * repeat(gain, gain_format, 150, 2),
                                      A.frac_bits + gain_format.frac_bits, out))),
    }


def nonlinear_cases():
    out = Q(2, 14)
    cores = {
        "sin": Sin(A, out, scale=1.0, lanes=2),
        "cos": Cos(A, out, scale=30.0),
        "tanh": Tanh(A, out),
        "sigmoid": Sigmoid(A, out),
        "exp": Exp(A, Q(8, 16)),
        "relu": Relu(A, out, scale=-0.3),
        "step": Step(A, out),
        "abs": Abs(A, out, scale=-0.3),
    }
    functions = {"sin": lambda z: np.sin(z), "cos": lambda z: np.cos(30 * z), "tanh": np.tanh,
                 "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "exp": np.exp,
                 "relu": lambda z: np.maximum(-0.3 * z, 0), "step": lambda z: (z > 0).astype(float),
                 "abs": lambda z: np.abs(-0.3 * z)}
    # The registry's other nonlinear cores, at default formats.
    for cls in missing([(type(core),) for core in cores.values()]):
        cores[cls.__name__.lower()] = cls(A, Q.parse(small_formats(cls)[1]))
        functions[cls.__name__.lower()] = float64(cls)
    cases = {}
    for name, core in cores.items():
        # Every input value; two lanes get the values in two different orders.
        a = every_value(A)
        if core.lanes == 2:
            a = np.concatenate([a, a[::-1]], axis=1)

        def model(core=core, a=a):
            return {"o": core.reference(a)}, bool(np.any(core.reference_overflow(a)))

        cases[name] = Case(core, {"a": a}, model, error_bound=(functions[name], 2.0))
    return cases


def matvec_case(rng, lanes=1):
    core = MatVec(rng.uniform(-1, 1, (6, 4)), A, Q(6, 8), channels=("forward", "transpose"), parallel=2, lanes=lanes)
    x0 = raw_tokens(rng, A, 20 * 4, lanes)
    x1 = raw_tokens(rng, A, 20 * 6, lanes)

    def model():
        outputs, overflowed = {}, False
        references = core.reference(x0.reshape(-1), x1.reshape(-1))
        for k, x in enumerate((x0, x1)):
            n_in, _ = core.lengths(k)
            outputs[f"o{k}"] = references[k].reshape(-1, lanes)
            matrix = core.weight_raw if core.channels[k] == "forward" else core.weight_raw.T
            sums = x.reshape(-1, n_in, lanes).swapaxes(1, 2) @ matrix.T
            overflowed |= bool(np.any(convert_raw(sums, core.accumulator_format(k), core.out_format)[1]))
        return outputs, overflowed

    return Case(core, {"x0": x0, "x1": x1}, model)


def primitive_cases(rng):
    """Multiplying cores whose products are DSP primitives, with and without operand registers.

    The operands are wider than the ports, so the products are split over several primitives."""
    wide, out = Q(6, 14), Q(6, 12)
    a, b, c = raw_tokens(rng, wide, 120, 2), raw_tokens(rng, wide, 120, 2), raw_tokens(rng, wide, 120, 2)
    product_frac = 2 * wide.frac_bits
    ecp5 = {"dsp_shape": MULT18X18D_REGISTERED.shape, "pipelining": Pipelining(dsp=MULT18X18D_REGISTERED)}
    ecp5_slow = {"dsp_shape": MULT18X18D_REGISTERED.shape,
                 "pipelining": dataclasses.replace(UNPIPELINED, dsp=MULT18X18D_REGISTERED)}
    xcup = {"dsp_shape": DSP48E2_REGISTERED.shape, "pipelining": Pipelining(dsp=DSP48E2_REGISTERED)}
    matvec = MatVec(rng.uniform(-1, 1, (6, 4)), wide, Q(6, 8), channels=("forward", "transpose"), parallel=2, **ecp5)
    x0, x1 = raw_tokens(rng, wide, 20 * 4), raw_tokens(rng, wide, 20 * 6)

    def matvec_model():
        outputs = matvec.reference(x0.reshape(-1), x1.reshape(-1))
        return {"o0": outputs[0].reshape(-1, 1), "o1": outputs[1].reshape(-1, 1)}, None

    def single(output):
        return lambda: ({"o": output[0]}, bool(np.any(output[1])))

    sine = Sin(A, Q(2, 14), scale=1.0, **xcup)
    angles = every_value(A)
    # Three lanes: two share the DP16KD blocks' two ports, the third has blocks of its own.
    sine_rom = Sin(A, Q(2, 14), scale=1.0, lanes=3, dsp_shape=MULT18X18D_REGISTERED.shape,
                   pipelining=Pipelining(dsp=MULT18X18D_REGISTERED, rom=DP16KD_REGISTERED))
    rom_angles = np.concatenate([angles, angles[:(-len(angles)) % 3]]).reshape(-1, 3)
    return {
        "mul_mult18x18d": Case(Mul(wide, wide, out, lanes=2, **ecp5), {"a": a, "b": b},
                               single(fixed(a * b, product_frac, out))),
        "muladd_mult18x18d": Case(MulAdd(wide, wide, wide, out, lanes=2, **ecp5_slow), {"a": a, "b": b, "c": c},
                                  single(fixed(a * b + aligned(c, wide, product_frac), product_frac, out))),
        "muladd_dsp48e2": Case(MulAdd(wide, wide, wide, out, lanes=2, **xcup), {"a": a, "b": b, "c": c},
                               single(fixed(a * b + aligned(c, wide, product_frac), product_frac, out))),
        "sin_dsp48e2": Case(sine, {"a": angles},
                            lambda: ({"o": sine.reference(angles)}, bool(np.any(sine.reference_overflow(angles))))),
        "sin_dp16kd": Case(sine_rom, {"a": rom_angles},
                           lambda: ({"o": sine_rom.reference(rom_angles)},
                                    bool(np.any(sine_rom.reference_overflow(rom_angles))))),
        "matvec_mult18x18d": Case(matvec, {"x0": x0, "x1": x1}, matvec_model),
    }


def reduction_cases(rng):
    a = raw_tokens(rng, A, 3 * 40, 2)
    total = Sum(A, Q(6, 6), 3, lanes=2)
    lanes = Accumulate(A, Q(5, 8), 4, lanes=2)

    def sum_model():
        sums = a.reshape(40, 6).sum(axis=1).reshape(-1, 1)
        raw, overflowed = convert_raw(sums, total.acc_format, total.out_format)
        return {"o": raw}, bool(np.any(overflowed))

    def accumulate_model():
        sums = a.reshape(30, 4, 2).sum(axis=1)
        raw, overflowed = convert_raw(sums, lanes.acc_format, lanes.out_format)
        return {"o": raw}, bool(np.any(overflowed))

    return {"sum": Case(total, {"a": a}, sum_model), "accumulate": Case(lanes, {"a": a[:120]}, accumulate_model)}


def plumbing_cases(rng):
    a = raw_tokens(rng, A, 120, 2)
    scalars = raw_tokens(rng, A, 120)
    narrow = Q(6, 4)
    inputs = [(A, 3), (narrow, 2)]
    index = [(1, 0), (0, 2), 0.5, (0, 0), (1, 1), (0, 2), (0, 1), -3.25, 100.0]
    gather = Gather(inputs, A, index)
    i0, i1 = raw_tokens(rng, A, 3 * 30), raw_tokens(rng, narrow, 2 * 30)

    def gather_model():
        elements, overflows = [], []
        for entry in index:
            if isinstance(entry, float):
                raw, overflowed = fixed(Q(64, A.frac_bits).quantize([entry] * 30), A.frac_bits, A)
            else:
                port, element = entry
                source, fmt = (i0.reshape(30, 3), A) if port == 0 else (i1.reshape(30, 2), narrow)
                raw, overflowed = fixed(source[:, element], fmt.frac_bits, A)
            elements.append(raw)
            overflows.append(overflowed)
        return {"o": np.stack(elements, axis=1).reshape(-1, 1)}, bool(np.any(overflows))

    def passes(tokens, outputs=("o",)):
        return lambda: ({port: tokens for port in outputs}, None)

    return {
        "fork": Case(Fork(A, 2, lanes=2), {"i": a}, passes(a, ("o0", "o1"))),
        "fifo": Case(StreamFIFO(A, 5, lanes=2), {"i": a}, passes(a)),
        "relay": Case(RelayStation(A, lanes=2), {"i": a}, passes(a)),
        "gather": Case(gather, {"i0": i0, "i1": i1}, gather_model),
        "widen": Case(LaneConverter(A, 1, 3), {"i": scalars}, passes(scalars.reshape(-1, 3))),
        "narrow": Case(LaneConverter(A, 2, 1), {"i": a}, passes(a.reshape(-1, 1))),
        "pacer": Case(Pacer(A, 3, 8), {"i": scalars}, passes(scalars)),
    }


@pytest.fixture(scope="module")
def cases():
    rng = np.random.default_rng(RNG_SEED)
    return {**elementwise_cases(rng), **nonlinear_cases(), "matvec": matvec_case(rng),
            **reduction_cases(rng), **plumbing_cases(rng), "matvec_lanes": matvec_case(rng, lanes=2),
            **primitive_cases(rng)}


@pytest.fixture(scope="module")
def design(cases):
    # As the compiler writes a design: the DSP primitives instantiated, not their Amaranth models.
    wrapper = CoreSet({name: case.core for name, case in cases.items()})
    return wrapper, shared.convert(wrapper, name="cores")


def port_geometry(core, port):
    layout = getattr(core, port).payload.shape()
    return layout.elem_shape.width, layout.length


def run(cases, design, **kwargs):
    """Stream every case's inputs through the design at once; return (run, expected outputs, flags)."""
    inputs, outputs, expected, flags = {}, {}, {}, {}
    for name, case in cases.items():
        for port, tokens in case.inputs.items():
            width, _ = port_geometry(case.core, port)
            inputs[f"{name}_{port}"] = [pack_lanes(token, width) for token in tokens]
        model_outputs, overflowed = case.model()
        for port, tokens in model_outputs.items():
            outputs[f"{name}_{port}"] = len(tokens)
            expected[f"{name}_{port}"] = (case.core, port, tokens)
        if overflowed is not None:
            flags[f"{name}_overflow"] = int(overflowed)
    result = sim.run_verilog(design[1], top="cores", inputs=inputs, outputs=outputs, status=tuple(flags),
                             **kwargs)
    return result, expected, flags


def received(result, core, name, port):
    width, lanes = port_geometry(core, port)
    return np.array([unpack_lanes(word, width, lanes) for word in result.outputs[f"{name}_{port}"]], dtype=object)


def check_numbers(result, expected, flags):
    for full_name, (core, port, tokens) in expected.items():
        name = full_name[:-len(port) - 1]
        got = received(result, core, name, port)
        assert got.shape == tokens.shape, f"{full_name}: {got.shape} tokens, expected {tokens.shape}"
        mismatch = np.argwhere(got != tokens)
        assert mismatch.size == 0, (f"{full_name}: token {mismatch[0][0]} is {list(got[mismatch[0][0]])}, "
                                    f"expected {list(tokens[mismatch[0][0]])}")
    assert result.status == flags


def test_every_item_moves_once_under_gaps_and_back_pressure(cases, design):
    result, expected, flags = run(cases, design, valid_prob=0.6, ready_prob=0.5, seed=1)
    check_numbers(result, expected, flags)


def test_every_core_keeps_its_contract(cases, design):
    result, expected, flags = run(cases, design, valid_prob=0.6, ready_prob=1.0, seed=2)
    check_numbers(result, expected, flags)
    for name, case in cases.items():
        for contract, output in case.contracts():
            arrivals = {port: result.arrivals[f"{name}_{port}"] for port in contract.consumes}
            schedule = contract.schedule(arrivals)
            for port in contract.consumes:
                assert result.accepts[f"{name}_{port}"] == schedule.accepts[port].tolist(), \
                    f"{name}: accepts of {port} differ from the contract"
            assert result.emits[f"{name}_{output}"] == schedule.emits.tolist(), \
                f"{name}: emits of {output} differ from the contract"


def test_full_rate_pipelines_have_their_latency(cases, design):
    result, _, _ = run(cases, design)
    for name in ("add", "sin", "exp", "fifo"):
        core = cases[name].core
        port = next(iter(cases[name].inputs))
        accepts, emits = result.accepts[f"{name}_{port}"], result.emits[f"{name}_o"]
        assert accepts == list(range(len(accepts)))
        assert emits == [cycle + core.contract.latency for cycle in accepts]
    # MatVec keeps its multipliers busy: a firing every passes * n_in cycles, with lanes or not.
    for name in ("matvec", "matvec_lanes"):
        matvec = cases[name].core
        for k in range(2):
            firsts = np.asarray(result.accepts[f"{name}_x{k}"])[::matvec.lengths(k)[0]]
            assert np.all(np.diff(firsts) == matvec.contracts[k].ii)


def test_nonlinear_errors_stay_within_two_ulps(cases):
    for name, case in cases.items():
        if case.error_bound is None:
            continue
        function, ulps = case.error_bound
        out = case.core.out_format
        a = case.inputs["a"]
        exact = np.clip(function(A.to_float(a)), out.min_raw * out.ulp, out.max_value)
        error = np.abs(out.to_float(case.core.reference(a)) - exact) / out.ulp
        assert error.max() <= ulps, f"{name}: {error.max():.3f} ulp"

"""Number formats: bit-exact emulation and the search for the fewest bits that meet the error bar."""

import re

import numpy as np
import pytest
import torch
from amaranth.lib import wiring

import inrarch
from cores.fixed import Q
from inrarch.capture import capture
from inrarch.emulate import Emulator, emulate, emulation_errors
from inrarch.errors import CompileError
from inrarch.formats import (Formats, _Trials, _ranges, _stored, assign_formats, calibration_inputs, search_formats,
                             unify_shared_weight_formats)
from inrarch.ir import evaluate
from inrarch.passes import optimize
from sim.progress import progress_bar


def graph_of(order, activation="sin"):
    if activation == "sin":
        model = inrarch.models.siren(in_features=2, hidden=8, layers=2, out_features=2, w0=30.0, seed=1)
    else:
        model = inrarch.models.mlp(in_features=2, hidden=8, layers=2, out_features=2, activation=activation, seed=1)
    graph, _ = capture(inrarch.derivatives(model, order), torch.zeros(2, 2))
    return optimize(graph)


def search_trials(graph):
    """Errors of width choices on the search's own points, over its calibrated ranges."""
    x = calibration_inputs(graph.input.shape, (-1.0, 1.0), 32)
    values = evaluate(graph, x)
    ranges = _ranges(graph, evaluate(graph, calibration_inputs(graph.input.shape, (-1.0, 1.0))), 2.0, (-1.0, 1.0))
    return _Trials(graph, ranges, x, None, progress_bar("trials", enabled=False),
                   weight_bits=dict.fromkeys(_stored(graph), 18))


@pytest.mark.parametrize("order, activation", [(1, "sin"), (2, "sin"), (2, "tanh")])
def test_search_meets_the_bar_on_unseen_inputs(order, activation):
    graph = graph_of(order, activation)
    formats = search_formats(graph, tolerance=1e-3)
    search = formats.search
    x = np.random.default_rng(42).uniform(-1, 1, size=(500, 2))
    errors = emulation_errors(graph, formats, x)
    assert max(errors) <= 1e-3, errors
    assert max(search.errors) <= 2 * search.target
    assert search.bits_per_sample["searched"] <= search.bits_per_sample["uniform"]


def test_searched_edges_meet_the_target_with_fewer_bits_than_uniform():
    graph = graph_of(1)
    formats = search_formats(graph, tolerance=1e-3)
    search = formats.search
    widths = {node: formats[node].width - search.widened for node in graph.nodes}
    trials = search_trials(graph)
    assert max(trials.start(widths)) <= search.target
    assert max(widths.values()) == search.uniform_width > min(widths.values())
    assert search.bits_per_sample["searched"] < search.bits_per_sample["uniform"]


def test_uniform_width_is_the_narrowest_that_passes():
    graph = graph_of(1)
    search = search_formats(graph, tolerance=1e-3).search
    trials = search_trials(graph)
    assert max(trials.start(dict.fromkeys(graph.nodes, search.uniform_width))) <= search.target
    assert max(trials.start(dict.fromkeys(graph.nodes, search.uniform_width - 1))) > search.target


def test_tighter_tolerance_needs_more_bits_and_then_wider_weights():
    loose, tight, tighter = graph_of(1), graph_of(1), graph_of(1)
    loose_search = search_formats(loose, tolerance=1e-3).search
    tight_search = search_formats(tight, tolerance=5e-4).search
    assert tight_search.bits_per_sample["searched"] > loose_search.bits_per_sample["searched"]
    assert loose_search.weight_width == tight_search.weight_width == 18
    # 18-bit weights alone hold the error above 3e-5 of max|ref|; 27-bit ones get below.
    tighter_formats = search_formats(tighter, tolerance=1e-4)
    assert tighter_formats.search.weight_width == 27
    # Each stored operand is widened alone: those whose 18 bits still meet the target keep them.
    assert 18 in tighter_formats.search.weight_widths.values(), tighter_formats.search.weight_widths
    x = np.random.default_rng(5).uniform(-1, 1, size=(300, 2))
    assert max(emulation_errors(tighter, tighter_formats, x)) <= 1e-4


def test_unreachable_tolerance_is_a_clear_error():
    with pytest.raises(CompileError, match="even 12-bit values and 27-bit weights miss the error target"):
        search_formats(graph_of(1), tolerance=1e-6, max_width=12)


def test_compile_refuses_formats_that_miss_the_tolerance_on_the_check_inputs():
    """A bump narrower than the spacing of the calibration points, centred on a check point: its
    exp core gets the tiny range calibration saw and saturates there, whatever the width. Widening
    cannot help, so compile must refuse instead of returning a design that misses the tolerance."""
    calibration = calibration_inputs((1,), (-1.0, 1.0), 256).ravel()
    check = calibration_inputs((1,), (-1.0, 1.0), 256, seed=1).ravel()
    gaps = np.abs(check[:, None] - calibration[None, :]).min(axis=1)
    centre, width = float(check[np.argmax(gaps)]), float(gaps.max()) / 4

    def line_with_a_bump(x):
        return x + torch.exp(-((x - centre) / width) ** 2)

    with pytest.raises(CompileError) as refused:
        inrarch.compile(line_with_a_bump, torch.zeros(4, 1))
    message = str(refused.value)
    assert len(message.splitlines()) == 1
    reached = re.match(r"no number formats of up to 36 bits meet the tolerance: (\S+) × max\|ref\| on check "
                       r"inputs, over the tolerance 0.001; try a larger tolerance", message)
    assert reached and float(reached[1]) > 0.5, message


def test_width_and_forced_formats_skip_the_search():
    graph = graph_of(1)
    assert {fmt.width for fmt in assign_formats(graph, width=19).values()} == {19}
    assert {str(fmt) for fmt in assign_formats(graph, forced=Q.parse("q8.12")).values()} == {"q8.12"}


def test_emulator_updates_only_what_changed():
    graph = graph_of(2)
    formats = assign_formats(graph, width=20)
    x = calibration_inputs(graph.input.shape, (-1.0, 1.0), 16)
    emulator = Emulator(graph, formats, x)
    node = next(n for n in graph.nodes if n.op == "sin")
    narrower = Formats(unify_shared_weight_formats(graph, {**formats, node: Q(formats[node].int_bits, 8)}),
                       {n: formats.weight_width(n) for n in graph.nodes if "weight" in n.attrs or n.op == "mul_const"})
    updated = emulator.updated(narrower)
    assert sum(updated.raw[n] is not emulator.raw[n] for n in graph.nodes) < len(graph.nodes)
    for a, b in zip(updated.outputs(), Emulator(graph, narrower, x).outputs()):
        assert np.array_equal(a, b)


def test_emulation_builds_no_hardware(monkeypatch):
    """The emulator computes with the cores' models (cores.model): no amaranth component is built."""
    graph = graph_of(2, "tanh")
    formats = assign_formats(graph, width=20)
    x = calibration_inputs(graph.input.shape, (-1.0, 1.0), 8)
    expected = emulate(graph, formats, x)

    def no_component(*args, **kwargs):
        raise AssertionError("emulation built an amaranth component")

    monkeypatch.setattr(wiring.Component, "__init__", no_component)
    for got, want in zip(emulate(graph, formats, x), expected):
        assert np.array_equal(got, want)


def test_compile_reports_every_edge_format():
    model = inrarch.models.siren(in_features=2, hidden=8, layers=2, out_features=2, w0=30.0, seed=1)
    design = inrarch.compile(inrarch.derivatives(model, 1), torch.zeros(4, 2))
    report = design.report
    assert report["format_search"]["tolerance"] == 1e-3
    assert set(report["formats"]) == {node.name for node in design.graph.nodes}
    for fifo, stream in zip(report["fifos"], design.netlist.streams):
        assert fifo["format"] == report["formats"][stream.source.node.name]
    assert all(f["width"] == Q.parse(f["format"]).width for f in report["fifos"])
    assert inrarch.compile(inrarch.derivatives(model, 1), torch.zeros(4, 2),
                           width=27).report["format_search"] is None


def test_tight_tolerance_design_runs_in_verilator_within_it():
    """27-bit weights end to end: Verilator's words are the emulation's, within the 1e-4 asked for."""
    model = inrarch.models.siren(in_features=2, hidden=8, layers=2, out_features=2, w0=30.0, seed=1)
    fn = inrarch.derivatives(model, 1)
    design = inrarch.compile(fn, torch.zeros(8, 2), tolerance=1e-4)
    assert design.report["format_search"]["weight_width"] == 27
    x = np.random.default_rng(9).uniform(-1, 1, size=(8, 2))
    result = design.simulate(torch.tensor(x))
    for got, emulated, reference in zip(result.outputs, emulate(design.graph, design.formats, x),
                                        inrarch.reference(fn, x)):
        assert np.array_equal(got.reshape(8, -1), emulated.reshape(8, -1))
        reference = reference.detach().numpy()
        assert np.max(np.abs(got - reference)) <= 1e-4 * np.max(np.abs(reference))
    assert result.cycles == design.report["cycles_predicted"]

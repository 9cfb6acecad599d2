"""Runtime weights: capture with the parameters as values, the weight family and its checks, and
one compiled design running many networks in Verilator.

A graph captured with ``runtime_weights=True`` must compute, in float64, what torch computes for
every network of the architecture once its stored tensors are those the weight program derives
from that network. A design compiled once must then compute, in Verilator, each network loaded
into it: the example, two other random initializations and a network trained for 300 Adam steps
on a real signal, all loaded one after another between batches of one simulation, each within
1e-3 × max|ref| of float64 torch, with the batch's and the load's cycles as predicted.
"""

import copy
import importlib
import json

import numpy as np
import pytest
import torch
from torch.func import hessian, jacrev, vmap

import inrarch
from inrarch import ir
from inrarch.capture import capture, parameters
from bench.training import fit, image_patch, poisson_solution
from inrarch.capture.runtime import WeightProgram
from inrarch.emulate import relative_errors
from inrarch.errors import CompileError
from inrarch.passes import optimize
from inrarch.verification import simulate_and_check
from inrarch.weights import DEFAULT_HEADROOM, WeightError, WeightFamily, parameter_values


def pinn(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
                               torch.nn.Linear(16, 1)).eval()


def reverse_gradients(model):
    def fn(x):
        x = x.clone().requires_grad_(True)
        y = model(x)
        return [y, torch.stack([torch.autograd.grad(y[:, o].sum(), x, create_graph=True)[0]
                                for o in range(y.shape[1])], 1)]
    return fn


CASES = {
    "siren order 1": (lambda seed: inrarch.models.siren(2, 8, 2, 3, 30.0, seed), lambda m: inrarch.derivatives(m, 1)),
    "pinn order 2": (pinn, lambda m: inrarch.derivatives(m, 2)),
    "siren reverse mode": (lambda seed: inrarch.models.siren(2, 8, 1, 2, 30.0, seed), reverse_gradients),
    "siren torch.func": (lambda seed: inrarch.models.siren(2, 8, 1, 2, 30.0, seed),
                         lambda m: lambda x: [vmap(jacrev(m))(x), vmap(hessian(m))(x)]),
}


def _names(model):
    return [name for name, _ in parameters(model)]


@pytest.mark.parametrize("case", CASES)
def test_runtime_graph_computes_every_network_of_the_architecture(case):
    build, derivatives = CASES[case]
    example = build(0)
    fn = derivatives(example)
    graph, _ = capture(fn, torch.zeros(4, 2), runtime_weights=True)
    graph = optimize(graph)
    assert graph.program.names == _names(example)
    x = torch.rand(7, 2) * 2 - 1
    for other in (example, build(1), build(2)):
        stored = graph.program.evaluate(parameter_values(other, graph.program.names))
        with ir.loaded(graph, stored):
            values = ir.evaluate(graph, x.numpy().reshape(7, *graph.input.shape))
        for node, ref in zip(graph.outputs, inrarch.reference(fn, x, weights=other)):
            ref = ref.numpy()
            np.testing.assert_allclose(values[node].reshape(ref.shape), ref, rtol=0, atol=1e-10 * np.abs(ref).max())


def test_parameters_are_values_and_python_numbers_structure():
    """Every parameter is read at run time; w0 stays a scale of the structure; a derivative's
    parameter-derived vector (a first-layer column times w0) is one stored tensor."""
    model = inrarch.models.siren(2, 8, 2, 3, 30.0, 0)
    graph, _ = capture(inrarch.derivatives(model, 1), torch.zeros(1, 2), runtime_weights=True)
    graph = optimize(graph)
    stored = ir.runtime_tensors(graph)
    matmuls = [n for n in graph.nodes if n.op == "matmul"]
    assert all(n.attrs["weight"].runtime is not None for n in matmuls)
    assert len({id(n.attrs["weight"]) for n in matmuls}) == 3
    assert all(isinstance(n.attrs["values"], ir.Weight) for n in graph.nodes if n.op in ("add_const", "mul_const"))
    assert {n.attrs.get("scale") for n in graph.nodes if n.op in ("sin", "cos")} == {30.0}
    first = model.body[0].linear.weight.detach().double().numpy()
    columns = [w.matrix.reshape(-1) for w in stored if w.matrix.shape == (1, 8)][-2:]
    np.testing.assert_allclose(columns, [30.0 * first[:, 0], 30.0 * first[:, 1]])


def test_equal_example_values_stay_separate_tensors():
    """Two zero-initialized biases are two tensors: another network gives them different values."""
    model = pinn(0)
    with torch.no_grad():
        model[0].bias.zero_()
        model[2].bias.zero_()
    graph, _ = capture(inrarch.derivatives(model, 1), torch.zeros(1, 2), runtime_weights=True)
    biases = [n.attrs["values"] for n in graph.nodes if n.op == "add_const" and isinstance(n.attrs["values"], ir.Weight)]
    assert len({id(b) for b in biases}) == 3


def test_weight_program_is_plain_data():
    model = pinn(0)
    graph, _ = capture(inrarch.derivatives(model, 2), torch.zeros(1, 2), runtime_weights=True)
    again = WeightProgram.from_dict(json.loads(json.dumps(graph.program.as_dict())))
    values = parameter_values(pinn(3), graph.program.names)
    for a, b in zip(graph.program.evaluate(values), again.evaluate(values)):
        np.testing.assert_array_equal(a, b)


def test_stored_tensor_bounds_follow_from_the_parameters():
    model = inrarch.models.siren(2, 8, 1, 3, 30.0, 0)
    graph, _ = capture(inrarch.derivatives(model, 1), torch.zeros(1, 2), runtime_weights=True)
    program = graph.program
    bounds = {name: 0.5 for name in program.names}
    found = program.bounds(bounds)
    # every parameter at its bound gives the largest values: w0 times the first layer's columns, 15
    at_bounds = program.evaluate({name: np.full(shape, 0.5) for name, shape in program.parameters})
    assert found == [np.abs(tensor).max() for tensor in at_bounds]
    assert max(found) == 15.0
    # every network within the bounds stays within the stored tensors' bounds
    rng = np.random.default_rng(0)
    for _ in range(3):
        values = {name: rng.uniform(-0.5, 0.5, shape) for name, shape in program.parameters}
        for tensor, bound in zip(program.evaluate(values), found):
            assert np.abs(tensor).max() <= bound


def test_runtime_capture_needs_one_model():
    with pytest.raises(CompileError, match="reaches no torch.nn.Module"):
        capture(lambda x: torch.sin(3 * x), torch.zeros(1, 2), runtime_weights=True)
    first, second = pinn(0), pinn(1)
    with pytest.raises(CompileError, match="reaches 2"):
        capture(lambda x: first(x) + second(x), torch.zeros(1, 2), runtime_weights=True)


def test_reading_a_weight_in_python_is_refused():
    model = pinn(0)

    def fn(x):
        return model(x) if model[0].weight.sum() > 0 else -model(x)

    with pytest.raises(CompileError, match=r"data-dependent control flow.*model\[0\].weight.sum"):
        capture(fn, torch.zeros(1, 2), runtime_weights=True)


def test_family_and_checks():
    examples = [inrarch.models.siren(2, 8, 1, 3, 30.0, seed) for seed in (0, 1)]
    names = _names(examples[0])
    shapes = [(name, tuple(t.shape)) for name, t in parameters(examples[0])]
    values = [parameter_values(m, names) for m in examples]
    family = WeightFamily.describe(shapes, values, bounds={"head.bias": 3.0})
    largest = max(np.abs(v["body.0.linear.weight"]).max() for v in values)
    assert family.bounds["body.0.linear.weight"] == DEFAULT_HEADROOM * largest
    assert family.bounds["head.bias"] == 3.0
    family.check(parameter_values(inrarch.models.siren(2, 8, 1, 3, 30.0, 5), names))
    assert WeightFamily.from_dict(json.loads(json.dumps(family.as_dict()))) == family

    def refusal(weights):
        with pytest.raises(WeightError) as error:
            family.check(parameter_values(weights, names))
        assert "\n" not in str(error.value)
        return str(error.value)

    wide = inrarch.models.siren(2, 9, 1, 3, 30.0, 0)
    assert "'body.0.linear.weight' has shape (9, 2)" in refusal(wide)
    for value, word in ((float("nan"), "NaN"), (float("inf"), "infinite"), (7.0, "beyond the bound")):
        model = inrarch.models.siren(2, 8, 1, 3, 30.0, 0)
        with torch.no_grad():
            model.head.weight[1, 2] = value
        assert word in refusal(model) and "'head.weight'" in refusal(model)
    state = dict(examples[0].state_dict())
    del state["head.bias"]
    assert "no tensor 'head.bias'" in refusal(state)
    assert "'extra' is not one the design loads" in refusal({**examples[0].state_dict(), "extra": torch.zeros(2)})
    with pytest.raises(WeightError, match="below the"):
        WeightFamily.describe(shapes, values, bounds={"head.bias": 1e-6})



def test_weight_examples_of_another_shape_or_not_finite_are_refused_naming_the_tensor():
    model = inrarch.models.siren(2, 8, 1, 3, 30.0, 0)
    infinite = inrarch.models.siren(2, 8, 1, 3, 30.0, 1)
    with torch.no_grad():
        infinite.head.bias[0] = float("inf")
    for example, message in ((inrarch.models.siren(2, 9, 1, 3, 30.0, 0),
                              r"weight_examples\[1\]: tensor 'body.0.linear.weight' has shape \(9, 2\)"),
                             (infinite, r"weight_examples\[1\]: tensor 'head.bias' holds infinite values")):
        with pytest.raises(inrarch.CompileError, match=message):
            inrarch.compile(inrarch.derivatives(model, 1), torch.zeros(4, 2), weights="runtime",
                            weight_examples=[inrarch.models.siren(2, 8, 1, 3, 30.0, 2), example])


# One design, many networks, in Verilator -----------------------------------------------------

def _siren(seed):
    return inrarch.models.siren(2, 16, 2, 3, 30.0, seed)


def _trained(kind, seed, signal_seed):
    """A network of ``kind`` trained for 300 Adam steps at the learning rate usual for it: a SIREN on
    an image patch (lr 1e-4), a PINN on the analytic solution of a Poisson problem (lr 1e-3)."""
    if kind == "siren":
        patch = [(200, 250), (300, 100)][signal_seed]
        return fit(_siren(seed), *image_patch(*patch, size=24), lr=1e-4)[0]
    return fit(pinn(seed), *poisson_solution(points=512, seed=signal_seed), lr=1e-3)[0]


FAMILIES = {
    # name: (network builder, derivative order, lanes)
    "siren order 1": ("siren", 1, 1),
    "pinn order 2": ("pinn", 2, 2),
}


@pytest.fixture(scope="module", params=FAMILIES)
def family_run(request):
    """One design per architecture, compiled for the family of its example and of one trained
    network; then, in one simulation, the example, two random initializations and a network trained
    on another signal, each loaded between two batches."""
    kind, order, lanes = FAMILIES[request.param]
    build = _siren if kind == "siren" else pinn
    example = build(0)
    fn = inrarch.derivatives(example, order)
    design = inrarch.compile(fn, torch.zeros(16, 2), weights="runtime", lanes=lanes,
                             weight_examples=[_trained(kind, 3, signal_seed=1)])
    networks = {"example": example, "init 1": build(1), "init 2": build(2),
                "trained": _trained(kind, 4, signal_seed=0)}
    x = torch.rand(15, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    results = design.simulate_runs([(x, network) for network in networks.values()])
    return design, fn, x, networks, results


def test_one_design_computes_every_network_of_its_family(family_run):
    design, fn, x, networks, results = family_run
    for (name, network), result in zip(networks.items(), results):
        errors = relative_errors(result.outputs, inrarch.reference(fn, x, weights=network))
        print(f"{name}: errors {[f'{e:.1e}' for e in errors]}, {result.cycles} cycles, load {result.load_cycles}")
        assert max(errors) <= 1e-3, f"{name}: {errors}"
        assert result.cycles == design.predict_cycles(len(x)), name
        assert result.load_cycles == design.report["weight_load_cycles"] == design.weight_words + 1, name
        assert not result.overflow, name


def test_the_report_states_the_family(family_run):
    design, _, _, networks, _ = family_run
    family = design.report["weight_family"]["tensors"]
    assert [t["name"] for t in family] == [name for name, _ in parameters(networks["example"])]
    for tensor, (_, value) in zip(family, parameters(networks["example"])):
        assert tensor["shape"] == list(value.shape) and tensor["bound"] >= float(value.abs().max())
    assert design.report["weight_image_bytes"] == len(design.weight_image(networks["trained"]))
    assert sum(segment["words"] for segment in design.report["weight_segments"]) == design.weight_words


def test_loads_and_batches_survive_random_stalls(family_run):
    """Valid-gaps on the image and the samples, back-pressure on the outputs: two networks, each exact."""
    design, fn, x, networks, _ = family_run
    results = design.simulate_runs([(x, networks["trained"]), (x, networks["init 2"])], valid_prob=0.6,
                                   ready_prob=0.7, seed=4)
    for result, name in zip(results, ("trained", "init 2")):
        assert max(relative_errors(result.outputs, inrarch.reference(fn, x, weights=networks[name]))) <= 1e-3


def test_weights_outside_the_family_are_refused_before_anything_runs(family_run):
    design, _, x, networks, _ = family_run
    image = design.weight_image(networks["init 1"])
    for bad, message in ((image[:-1], "has {} bytes; the design takes".format(len(image) - 1)),
                         (image + bytes(64), "has {} bytes; the design takes".format(len(image) + 64))):
        with pytest.raises(WeightError, match=message):
            design.simulate(x, weights=bad)
    broken = copy.deepcopy(networks["init 1"])
    with torch.no_grad():
        next(broken.parameters()).view(-1)[3] = float("nan")
    with pytest.raises(WeightError, match="holds NaN values"):
        design.weight_image(broken)


def test_a_network_that_overflows_a_value_is_named_by_its_core():
    """A family of the random initialization alone holds the trained network's weights, but not the
    larger gradients it computes: the sticky overflow flag goes up, and simulate_and_check names
    the core that saturated."""
    example = _siren(0)
    fn = inrarch.derivatives(example, 1)
    design = inrarch.compile(fn, torch.zeros(8, 2), weights="runtime")
    trained = _trained("siren", 4, signal_seed=0)
    design.check_weights(trained)
    x = torch.rand(8, 2, generator=torch.Generator().manual_seed(2)) * 2 - 1
    verification = simulate_and_check(design, fn, x, tolerance=1e-3, weights=trained)
    overflow = [problem for problem in verification.problems if problem.startswith("overflow: the ")]
    assert overflow and verification.result.overflow_core in overflow[0], verification.problems
    assert not simulate_and_check(design, fn, x, tolerance=1e-3, weights=_siren(1)).problems


# The build directory: weights.bin, Design.load, --weights -------------------------------------

OTHER_MODELS = """
import inrarch

def second():
    return inrarch.models.siren(2, 8, 1, 3, 30.0, 7)

def wider():
    return inrarch.models.siren(2, 9, 1, 3, 30.0, 7)
"""


def test_a_build_directory_takes_other_networks_without_compiling(tmp_path, capsys):
    """``--runtime-weights`` writes weights.bin beside top.v; ``--weights path.py:attr`` writes another
    network's image with no compile and no Verilog (a network of another shape: one line, nothing
    written); Design.load reopens the directory, and its images and simulations are the compiled
    design's."""
    from inrarch.build import main

    out = tmp_path / "build"
    assert main(["--width", "8", "--depth", "1", "--batch", "4", "--runtime-weights", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["weights"] == "runtime" and "weight image" in capsys.readouterr().out
    assert (out / "weights.bin").stat().st_size == report["weight_image_bytes"]
    (tmp_path / "others.py").write_text(OTHER_MODELS)
    verilog = (out / "top.v").read_text()

    assert main(["--out", str(out), "--weights", f"{tmp_path / 'others.py'}:second"]) == 0
    second = importlib.import_module("inrarch").models.siren(2, 8, 1, 3, 30.0, 7)
    design = inrarch.Design.load(out)
    assert (out / "weights_second.bin").read_bytes() == design.weight_image(second)
    assert main(["--out", str(out), "--weights", f"{tmp_path / 'others.py'}:wider"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "'body.0.linear.weight' has shape (9, 2)" in error
    assert not (out / "weights_wider.bin").exists() and (out / "top.v").read_text() == verilog
    assert main(["--out", str(out), "--weights", f"{tmp_path / 'others.py'}:second", "--order", "2", "--simulate"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--order, --simulate do not apply" in error

    assert design.verilog() == verilog and design.weight_image() == (out / "weights.bin").read_bytes()
    fn = inrarch.derivatives(_siren_8(0), 1)
    x = torch.rand(4, 2, generator=torch.Generator().manual_seed(3)) * 2 - 1
    assert not simulate_and_check(design, fn, x, tolerance=1e-3, weights=second).problems
    result = design.simulate(x, weights=(out / "weights_second.bin").read_bytes())
    assert max(relative_errors(result.outputs, inrarch.reference(fn, x, weights=second))) <= 1e-3
    assert result.load_cycles == report["weight_load_cycles"]


def _siren_8(seed):
    return inrarch.models.siren(2, 8, 1, 3, 30.0, seed)

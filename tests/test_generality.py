"""What users write in torch either compiles and matches float64 torch, or fails with one clear line.

Models: SIREN (any w0, a different first-layer w0), MLPs with cos, tanh, sigmoid, relu, softplus,
Gaussian and sine activations, torch.nn MLPs in float32 with SiLU, ELU and LeakyReLU, Fourier-feature
inputs and skip connections, 1–4 inputs and outputs, widths that are not powers of two. Ways to write the derivatives: :func:`inrarch.derivatives`, torch.func
(``jacrev``/``jacfwd``/``hessian`` of a per-sample function under ``vmap``), loops of
``torch.autograd.grad(create_graph=True)``, and derived quantities (Laplacian, squared gradient
norm, gradient norm, divergence); softplus networks.

* :func:`test_capture_matches_torch`: capture and every IR pass against torch in float64 (no
  Verilator, fast). CI runs orders 1–2 of every combination and order 3 of a few; ``--full``
  (or ``INRARCH_FULL=1``) adds orders 3 and 4 everywhere.
* :func:`test_design_matches_torch_in_verilator`: compiled designs in Verilator, within
  ``1e-3 × max|ref|`` of torch per output, at the predicted cycles, without overflow
  (:func:`inrarch.verification.check_simulation`). CI runs the :data:`CI_DESIGNS` subset (a
  Verilator build costs 30–60 s); ``--full`` runs every case. One design folded to a DSP budget
  runs too.
* The ``test_refuses_*`` tests: each kind of unsupported function gives one
  :class:`inrarch.CompileError` line that says what and where.
"""

import itertools
import os
import sys

import cloudpickle
import numpy as np
import pytest
import torch
from torch.func import grad, hessian, jacfwd, jacrev, vmap

import inrarch
from bench.workload import autograd_per_component
from inrarch import ir
from inrarch.capture import capture
from inrarch.emulate import relative_errors
from inrarch.passes import PIPELINE
from inrarch.verification import check_simulation

TOLERANCE = 1e-3
BATCH = 8


def torch_mlp(in_features, hidden, out_features, activation, seed):
    """``Linear, activation, Linear`` from torch.nn as a user writes it: float32, torch's own
    initialization (seeded without touching the global generator)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(in_features, hidden), activation,
                                   torch.nn.Linear(hidden, out_features))


# name -> (in_features, out_features, builder); widths 9–13 are deliberately not powers of two.
MODELS = {
    "sin": (2, 3, lambda: inrarch.models.siren(2, 12, 2, 3, w0=30.0, seed=1)),
    "sin-first-w0": (3, 1, lambda: inrarch.models.siren(3, 10, 2, 1, w0=3.0, seed=2, first_w0=45.0)),
    "cos": (1, 4, lambda: inrarch.models.mlp(1, 9, 2, 4, "cos", seed=3)),
    "tanh": (3, 2, lambda: inrarch.models.mlp(3, 10, 2, 2, "tanh", seed=4)),
    "sigmoid": (4, 1, lambda: inrarch.models.mlp(4, 11, 2, 1, "sigmoid", seed=5)),
    "relu": (2, 2, lambda: inrarch.models.mlp(2, 12, 2, 2, "relu", seed=6)),
    "gaussian": (1, 1, lambda: inrarch.models.mlp(1, 13, 2, 1, "gaussian", seed=7)),
    "fourier": (2, 1, lambda: inrarch.models.fourier_features(2, 3, 1.0, 10, 2, 1, "tanh", seed=8)),
    "skip": (4, 3, lambda: inrarch.models.skip_mlp(4, 10, 3, 3, "sigmoid", skip_at=1, seed=9)),
    "softplus": (2, 2, lambda: inrarch.models.mlp(2, 11, 2, 2, "softplus", seed=10)),
    # FINER's sin((|z| + 1) z): abs, and sign (two steps) in its derivatives.
    "finer": (2, 1, lambda: inrarch.models.mlp(2, 8, 2, 1, "finer", seed=14)),
    # Activations torch._decomp rewrites into supported ops while tracing.
    "silu": (2, 1, lambda: torch_mlp(2, 8, 1, torch.nn.SiLU(), seed=11)),
    "elu": (2, 2, lambda: torch_mlp(2, 8, 2, torch.nn.ELU(), seed=12)),
    "leaky_relu": (3, 1, lambda: torch_mlp(3, 8, 1, torch.nn.LeakyReLU(0.1), seed=13)),
}


def torch_func(model, order):
    """vmap of nested jacrev/jacfwd of the per-sample model: ``(batch, out, in, ..., in)``."""
    per_sample = jacrev(model)
    for _ in range(order - 1):
        per_sample = jacfwd(per_sample)
    return vmap(per_sample)


def laplacian(model):
    return lambda x: vmap(hessian(model))(x).diagonal(dim1=-2, dim2=-1).sum(-1)


def squared_gradient_norm(model):
    return lambda x: (vmap(jacrev(model))(x) ** 2).sum((-2, -1))


def gradient_norm(model):
    """The 2-norm of each sample's Jacobian (for one output, of its gradient)."""
    return lambda x: torch.linalg.vector_norm(vmap(jacrev(model))(x), dim=(-2, -1))


def per_sample_grad(model):
    """torch.func.grad of a scalar per-sample function (the sum of the outputs), under vmap."""
    return vmap(grad(lambda x: model(x).sum()))


WAYS = {
    "derivatives": inrarch.derivatives,
    "torch.func": torch_func,
    "autograd": autograd_per_component,
}
DERIVED = {
    "laplacian": laplacian,
    "gradient-norm²": squared_gradient_norm,
    "gradient-norm": gradient_norm,
    "grad": per_sample_grad,
}


def divergence(model):
    return lambda x: vmap(jacrev(model))(x).diagonal(dim1=-2, dim2=-1).sum(-1)


def make_fn(model_name, way, order):
    in_features, out_features, build = MODELS[model_name]
    model = build()
    fn = WAYS[way](model, order) if way in WAYS else DERIVED[way](model)
    return fn, in_features


# Capture + IR evaluate -----------------------------------------------------------------------
CI_ORDERS = (1, 2)
CI_ORDER_3 = {("sin", "torch.func"), ("relu", "derivatives"), ("gaussian", "autograd"), ("cos", "derivatives")}
CAPTURE_CASES = ([(m, w, o) for m, w, o in itertools.product(MODELS, WAYS, (1, 2, 3, 4))]
                 + [(m, w, 1) for m, w in itertools.product(MODELS, DERIVED)])


@pytest.mark.parametrize("model_name,way,order", CAPTURE_CASES, ids=[f"{m}-{w}-{o}" for m, w, o in CAPTURE_CASES])
def test_capture_matches_torch(model_name, way, order, full_mode):
    if not full_mode and order > 2 and (model_name, way) not in CI_ORDER_3 or order == 4 and not full_mode:
        pytest.skip("runs with --full")
    fn, in_features = make_fn(model_name, way, order)
    x = torch.tensor(np.random.default_rng(order).uniform(-1, 1, size=(5, in_features)))
    graph, single = capture(fn, x)
    expected = inrarch.reference(fn, x)
    for simplify in (lambda g: g, *PIPELINE):
        graph = simplify(graph)
        values = ir.evaluate(graph, x.numpy())
        errors = relative_errors([values[node] for node in graph.outputs], expected)
        assert len(graph.outputs) == len(expected)
        assert max(errors) <= 1e-10, errors


def test_divergence_matches_torch():
    model = inrarch.models.mlp(3, 10, 2, 3, "tanh", seed=10)
    fn = divergence(model)
    x = torch.tensor(np.random.default_rng(0).uniform(-1, 1, size=(5, 3)))
    graph, _ = capture(fn, x)
    values = ir.evaluate(graph, x.numpy())
    assert relative_errors([values[graph.outputs[0]]], inrarch.reference(fn, x))[0] <= 1e-10


def test_in_place_ops_on_streamed_tensors_keep_their_meaning():
    model = inrarch.models.mlp(2, 9, 1, 2, "tanh")

    def fn(x):
        y = model(x).clone()
        y[:, 0] = 0.5
        y.mul_(3)
        y += x.sum(1, keepdim=True)
        return torch.relu_(y)

    x = torch.tensor(np.random.default_rng(0).uniform(-1, 1, size=(5, 2)))
    graph, _ = capture(fn, x)
    values = ir.evaluate(graph, x.numpy())
    assert relative_errors([values[graph.outputs[0]]], inrarch.reference(fn, x))[0] <= 1e-12


def test_relu_second_derivative_is_a_constant_zero():
    graph, _ = capture(inrarch.derivatives(inrarch.models.mlp(2, 12, 2, 1, "relu"), 2),
                       torch.zeros(2, 2, dtype=torch.float64))
    second = graph.outputs[2]
    assert second.op == "gather" and set(second.attrs["entries"]) == {0.0}


# Verilator -----------------------------------------------------------------------------------
DESIGN_CASES = ([(m, w, o) for m, w, o in itertools.product(MODELS, WAYS, (1, 2, 3, 4))]
                + [(m, w, 1) for m, w in itertools.product(MODELS, DERIVED)])
CI_DESIGNS = {
    ("relu", "derivatives", 2),        # step, and a constant-zero second derivative
    ("tanh", "torch.func", 2),         # 3 → 2, jacfwd(jacrev) per sample
    ("gaussian", "autograd", 3),       # exp(-x²), 1 → 1, autograd.grad loops
    ("fourier", "derivatives", 1),     # sin/cos(B x) input encoding
    ("skip", "gradient-norm²", 1),     # skip connection, 4 inputs, a sum of squares
    ("sin-first-w0", "laplacian", 1),  # a different first-layer w0, trace of the Hessian
    ("cos", "derivatives", 4),         # order 4, 4 outputs
    ("softplus", "derivatives", 2),    # softplus, and sigmoid for its derivatives
    ("sin", "gradient-norm", 1),       # a square root at the end
    ("silu", "derivatives", 2),        # x·sigmoid(x), from torch.nn, float32
    ("elu", "derivatives", 2),         # exp below zero, a step between the branches
    ("leaky_relu", "derivatives", 1),  # a step scaling the negative side
}


def design_problems(model_name, way, order):
    """Compile one case, run it in Verilator and check it: its problems, one line each."""
    fn, in_features = make_fn(model_name, way, order)
    design = inrarch.compile(fn, torch.zeros(BATCH, in_features))
    x = torch.tensor(np.random.default_rng(order).uniform(-1.0, 1.0, size=(BATCH, in_features)))
    return check_simulation(design, design.simulate(x), inrarch.reference(fn, x), TOLERANCE)


@pytest.fixture(scope="module")
def cluster_problems(request):
    """With ``--scheduler``: every selected Verilator case submitted to that Dask cluster at once,
    so that they run in parallel while the tests wait for them in turn; case -> future."""
    address = request.config.getoption("--scheduler")
    if address is None:
        yield None
        return
    from dask.distributed import Client

    # The workers need not see tests/: the cases' code travels with the tasks.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cases = [tuple(item.callspec.params[name] for name in ("model_name", "way", "order"))
             for item in request.session.items if item.originalname == "test_design_matches_torch_in_verilator"]
    full = request.config.getoption("--full") or os.environ.get("INRARCH_FULL") == "1"
    cases = [case for case in cases if full or case in CI_DESIGNS]
    with Client(address) as client:
        yield dict(zip(cases, client.map(design_problems, *zip(*cases), pure=False))) if cases else {}


@pytest.mark.parametrize("model_name,way,order", DESIGN_CASES, ids=[f"{m}-{w}-{o}" for m, w, o in DESIGN_CASES])
def test_design_matches_torch_in_verilator(model_name, way, order, full_mode, cluster_problems):
    if not full_mode and (model_name, way, order) not in CI_DESIGNS:
        pytest.skip("runs with --full")
    case = (model_name, way, order)
    problems = cluster_problems[case].result() if cluster_problems is not None else design_problems(*case)
    assert problems == []


def test_a_budget_folded_design_runs_in_verilator_at_its_slower_pace():
    """A DSP budget below the unfolded design's folds the matmuls: fewer multipliers, each doing
    more products per sample, and a period above the stream pace."""
    fn, in_features = make_fn("relu", "derivatives", 1)
    example = torch.zeros(BATCH, in_features)
    unfolded = inrarch.compile(fn, example)
    folded = inrarch.compile(fn, example, dsp_budget=unfolded.report["dsp_estimate"] - 1)
    assert folded.report["period_cycles"] > unfolded.report["period_cycles"]
    assert folded.report["multipliers"] < unfolded.report["multipliers"]
    assert folded.report["dsp_estimate"] < unfolded.report["dsp_estimate"]
    x = torch.tensor(np.random.default_rng(5).uniform(-1.0, 1.0, size=(BATCH, in_features)))
    result = folded.simulate(x)
    assert check_simulation(folded, result, inrarch.reference(fn, x), TOLERANCE) == []


# Refusals ------------------------------------------------------------------------------------
SIREN = inrarch.models.siren(2, 8, 1, 1, seed=0)
EXAMPLE = torch.zeros(4, 2, dtype=torch.float64)


def refusal(fn, example=EXAMPLE):
    with pytest.raises(inrarch.CompileError) as info:
        inrarch.compile(fn, example)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    return message


def test_refuses_an_unsupported_op_naming_it_and_the_source_line():
    def fn(x):
        return torch.special.bessel_j0(SIREN(x))

    message = refusal(fn)
    assert "unsupported op torch.special.bessel_j0 at " in message
    assert "test_generality.py:" in message and "return torch.special.bessel_j0(SIREN(x))" in message


def test_refuses_a_derivative_of_a_norm_saying_why():
    def gradient_of_norm(x):
        return vmap(jacrev(lambda v: torch.linalg.vector_norm(jacrev(SIREN)(v))))(x)

    message = refusal(gradient_of_norm)
    assert "torch.eq" in message and "derivative of a norm" in message and "test_generality.py:" in message


def test_refuses_log_naming_the_missing_core():
    message = refusal(lambda x: torch.log(SIREN(x) + 2.0))
    assert "unsupported op torch.log (there is no log core)" in message


def test_refuses_data_dependent_control_flow():
    def fn(x):
        y = SIREN(x)
        if y.sum() > 0:
            return y
        return -y

    message = refusal(fn)
    assert message.startswith("data-dependent control flow is not supported") and "if y.sum() > 0:" in message


def test_refuses_dynamic_shapes():
    def fn(x):
        y = SIREN(x)
        return y[y > 0]

    message = refusal(fn)
    assert "aten.index" in message and "data-dependent shapes" in message and "return y[y > 0]" in message


@pytest.mark.parametrize("dtype,kind", [(torch.int32, "integer"), (torch.complex128, "complex")])
def test_refuses_integer_and_complex_values(dtype, kind):
    message = refusal(lambda x: SIREN(x).to(dtype))
    assert f"unsupported dtype {dtype}" in message and f"{kind} values are not supported" in message


@pytest.mark.parametrize("dtype", [torch.int64, torch.complex64])
def test_refuses_integer_and_complex_inputs(dtype):
    with pytest.raises(inrarch.CompileError, match=f"unsupported input dtype {dtype}: inputs must be real"):
        capture(SIREN, torch.zeros(4, 2, dtype=dtype))


@pytest.mark.parametrize("order", [0, -1, 1.5])
def test_refuses_an_order_below_one(order):
    with pytest.raises(inrarch.CompileError, match=f"order must be an integer >= 1, not {order}"):
        inrarch.derivatives(SIREN, order)


def test_refuses_a_function_of_two_tensors():
    def fn(x, t):
        return SIREN(x) * t

    message = refusal(fn)
    assert "takes 2 tensors (x, t)" in message and "one tensor" in message

"""Capture and passes keep the function's meaning: the IR, run in float64, equals torch."""

import numpy as np
import pytest
import torch
from torch.func import hessian, jacfwd, jacrev, vmap

import inrarch
from inrarch import ir, ops
from inrarch.capture import capture
from inrarch.capture.translation import user_name, writable
from inrarch.errors import CompileError
from inrarch.passes import PIPELINE, optimize

MODEL = inrarch.models.siren(in_features=2, hidden=8, layers=2, out_features=3, w0=30.0, seed=0)


def autograd_gradients(x):
    x = x.clone().requires_grad_(True)
    y = MODEL(x)
    grads = [torch.autograd.grad(y[:, o].sum(), x, create_graph=True)[0] for o in range(3)]
    return [y, torch.stack(grads, 1)]


def func_transforms(x):
    return [vmap(jacrev(MODEL))(x), vmap(jacfwd(MODEL))(x), vmap(hessian(MODEL))(x)]


def laplacian(x):
    return vmap(hessian(MODEL))(x).diagonal(dim1=-2, dim2=-1).sum(-1)


FUNCTIONS = {
    "derivatives-1": inrarch.derivatives(MODEL, 1),
    "derivatives-2": inrarch.derivatives(MODEL, 2),
    "derivatives-3": inrarch.derivatives(MODEL, 3),
    "autograd": autograd_gradients,
    "torch.func": func_transforms,
    "laplacian": laplacian,
}


def _check(graph, fn, x):
    values = ir.evaluate(graph, x.numpy().reshape(len(x), *graph.input.shape))
    expected = inrarch.reference(fn, x)
    assert len(expected) == len(graph.outputs)
    for node, ref in zip(graph.outputs, expected):
        ref = ref.detach().numpy()
        np.testing.assert_allclose(values[node].reshape(ref.shape), ref, rtol=0, atol=1e-10 * max(1, np.abs(ref).max()))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_capture_and_every_pass_keep_the_meaning(name):
    fn = FUNCTIONS[name]
    x = torch.rand(9, 2) * 2 - 1
    graph, _ = capture(fn, x)
    _check(graph, fn, x)
    for simplify in PIPELINE:
        graph = simplify(graph)
        _check(graph, fn, x)


def test_derivatives_compute_each_unique_partial_once():
    """Order 2 of a 2-hidden-layer SIREN: one matmul for the first layer (its tangents are
    constants), and six (value, 2 first, 3 unique second partials) for each later layer."""
    graph, _ = capture(inrarch.derivatives(MODEL, 2), torch.zeros(4, 2))
    graph = optimize(graph)
    assert graph.op_counts()["matmul"] == 1 + 6 + 6


def test_weights_are_stored_once_for_forward_and_transpose():
    graph, _ = capture(autograd_gradients, torch.zeros(4, 2))
    graph = optimize(graph)
    matmuls = [n for n in graph.nodes if n.op == "matmul"]
    assert {n.attrs["transposed"] for n in matmuls} == {False, True}
    assert len({id(n.attrs["weight"]) for n in matmuls}) == 3


def test_unsupported_op_is_named_with_the_supported_set():
    def fn(x):
        return torch.special.bessel_j0(MODEL(x))

    with pytest.raises(CompileError, match=r"unsupported op torch\.special\.bessel_j0 at .*; inrarch computes sin, cos, "):
        capture(fn, torch.zeros(2, 2))


def test_matmul_of_two_streamed_tensors_is_refused():
    with pytest.raises(CompileError, match="two streamed tensors"):
        capture(lambda x: x @ x.T, torch.zeros(2, 2))


def test_ops_are_named_as_users_write_them():
    assert [user_name(name) for name in ("native_layer_norm", "special_bessel_j0", "_softmax", "abs", "gelu",
                                         "log_sigmoid_forward", "no_such_op")] == [
        "torch.layer_norm", "torch.special.bessel_j0", "torch.softmax", "torch.abs", "torch.nn.functional.gelu",
        "torch.nn.functional.logsigmoid", "aten.no_such_op"]


def test_what_users_can_write_lists_every_registered_activation():
    listed = writable()
    activations = [name for name, spec in ops.OPS.items() if spec.scaled and name in spec.captures]
    assert {"sin", "tanh", "softplus", "sqrt"} <= set(activations)
    assert listed.startswith("inrarch computes " + ", ".join(activations) + ", elu, leaky_relu, silu (")
    assert "aten" not in listed and "_backward" not in listed


def test_a_torch_layer_is_named_at_the_users_line_that_calls_it():
    class Normed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = torch.nn.LayerNorm(2)

        def forward(self, x):
            return torch.sin(self.norm(x))

    with pytest.raises(CompileError) as refused:
        capture(Normed(), torch.zeros(2, 2))
    message = str(refused.value)
    assert message.startswith("unsupported op torch.layer_norm (normalizing divides by a streamed standard deviation")
    assert "test_capture.py:" in message and "return torch.sin(self.norm(x)), in nn.LayerNorm 'norm';" in message
    assert "torch/nn/functional.py" not in message

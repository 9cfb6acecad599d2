"""The models users have compile as they are: float32 (torch's default), float16, bfloat16 and
float64, in train mode, with buffers and plain tensor attributes, with an example input of
another dtype than the model, and through ``--model``. None of it changes the user's model."""

import copy
import math

import numpy as np
import pytest
import torch

import inrarch
from inrarch import ir
from inrarch.build import main as build_main
from inrarch.capture import capture
from inrarch.emulate import relative_errors

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
#: Where the format search is not the point, every edge gets this many bits: a compile in a second.
BITS = 20


class Sine(torch.nn.Module):
    """A SIREN layer as users write it."""

    def __init__(self, in_features, out_features, w0):
        super().__init__()
        self.linear = torch.nn.Linear(in_features, out_features)
        self.w0 = w0

    def forward(self, x):
        return torch.sin(self.w0 * self.linear(x))


class FourierNet(torch.nn.Module):
    """Fourier features with the projection as a registered buffer and a scale as a plain tensor attribute."""

    def __init__(self):
        super().__init__()
        self.register_buffer("B", torch.randn(3, 2))
        self.scale = torch.tensor(2 * math.pi)
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def forward(self, x):
        projected = self.scale * x @ self.B.T
        return self.net(torch.cat([torch.sin(projected), torch.cos(projected)], dim=-1))


def user_siren(dtype=None):
    torch.manual_seed(0)
    net = torch.nn.Sequential(Sine(2, 8, 30.0), Sine(8, 8, 30.0), torch.nn.Linear(8, 3))
    return net if dtype is None else net.to(dtype)


def snapshot(model):
    """Everything compiling could change: tensors and their dtypes, Parameter objects, flags, grads."""
    return {
        "state": {name: (value.dtype, value.clone()) for name, value in model.state_dict().items()},
        "parameters": [(id(p), type(p), p.requires_grad, None if p.grad is None else p.grad.clone())
                       for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "attributes": {name: value.clone() for m in model.modules() for name, value in vars(m).items()
                       if isinstance(value, torch.Tensor)},
    }


def assert_unchanged(model, before):
    after = snapshot(model)
    assert after["training"] == before["training"]
    assert [entry[:3] for entry in after["parameters"]] == [entry[:3] for entry in before["parameters"]]
    for (*_, grad_after), (*_, grad_before) in zip(after["parameters"], before["parameters"]):
        assert (grad_after is None) == (grad_before is None)
        assert grad_after is None or torch.equal(grad_after, grad_before)
    assert after["state"].keys() == before["state"].keys()
    for name, (dtype, value) in before["state"].items():
        assert after["state"][name][0] == dtype and torch.equal(after["state"][name][1], value), name
    for name, value in before["attributes"].items():
        assert after["attributes"][name].dtype == value.dtype and torch.equal(after["attributes"][name], value)


def captured_matches_reference(fn, x):
    graph, _ = capture(fn, x)
    values = ir.evaluate(graph, x.to(torch.float64).numpy().reshape(len(x), *graph.input.shape))
    return relative_errors([values[node] for node in graph.outputs], inrarch.reference(fn, x))


def test_the_issue_snippet_compiles_a_plain_float32_model():
    torch.manual_seed(0)
    net = torch.nn.Sequential(Sine(2, 16, 30.0), Sine(16, 16, 30.0), torch.nn.Linear(16, 3))
    design = inrarch.compile(inrarch.derivatives(net, order=2), example_input=torch.rand(8, 2) * 2 - 1)
    assert design.report["cycles_predicted"] > 0
    assert next(net.parameters()).dtype == torch.float32


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_models_of_every_floating_dtype_compile_and_are_left_unchanged(dtype):
    net = user_siren(dtype)
    for p in net.parameters():  # a user in the middle of training has gradients
        p.grad = torch.ones_like(p)
    before = snapshot(net)
    fn = inrarch.derivatives(net, 1)
    x = torch.rand(6, 2, dtype=dtype) * 2 - 1
    assert max(captured_matches_reference(fn, x)) < 1e-9
    design = inrarch.compile(fn, x, width=BITS)
    assert design.report["formats"]
    assert_unchanged(net, before)


def test_the_reference_is_the_float64_mathematics_of_the_models_own_weights():
    net = user_siren(torch.float16)
    exact = copy.deepcopy(net).double()
    x = torch.rand(5, 2) * 2 - 1
    got = inrarch.reference(inrarch.derivatives(net, 2), x)
    expected = inrarch.derivatives(exact, 2)(x.double())
    assert all(g.dtype == torch.float64 and torch.allclose(g, e, rtol=0, atol=1e-12) for g, e in zip(got, expected))


def test_a_model_in_train_mode_compiles_and_stays_in_train_mode():
    net = user_siren().train()
    before = snapshot(net)
    inrarch.compile(inrarch.derivatives(net, 1), torch.zeros(4, 2), width=BITS)
    assert net.training and all(m.training for m in net.modules())
    assert_unchanged(net, before)


@pytest.mark.parametrize("layer,kind", [(torch.nn.Dropout(0.1), "Dropout"), (torch.nn.BatchNorm1d(8), "BatchNorm1d")])
def test_train_mode_layers_that_mix_or_randomize_samples_are_refused_without_touching_them(layer, kind):
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), layer, torch.nn.Tanh(), torch.nn.Linear(8, 1))
    before = snapshot(net)
    with pytest.raises(inrarch.CompileError) as info:
        inrarch.compile(inrarch.derivatives(net, 1), torch.zeros(4, 2))
    message = str(info.value)
    assert len(message.splitlines()) == 1 and kind in message and "model.eval()" in message
    assert_unchanged(net, before)


def test_buffers_and_plain_tensor_attributes_are_read_in_float64():
    torch.manual_seed(3)
    net = FourierNet()
    before = snapshot(net)
    fn = inrarch.derivatives(net, 2)
    assert max(captured_matches_reference(fn, torch.rand(7, 2) * 2 - 1)) < 1e-9
    inrarch.compile(fn, torch.zeros(4, 2), width=BITS)
    assert net.B.dtype == torch.float32 and net.scale.dtype == torch.float32
    assert_unchanged(net, before)


PROJECTION = torch.randn(2, 3, generator=torch.Generator().manual_seed(4))


def test_tensors_in_closures_and_globals_are_read_in_float64():
    head = torch.nn.Linear(6, 2)
    offset = torch.full((6,), 0.25)

    def features(x):
        projected = x @ PROJECTION
        return head(torch.cat([torch.sin(projected), torch.cos(projected)], -1) + offset)

    fn = inrarch.derivatives(features, 1)
    assert max(captured_matches_reference(fn, torch.rand(5, 2) * 2 - 1)) < 1e-9
    inrarch.compile(fn, torch.zeros(4, 2), width=BITS)
    assert PROJECTION.dtype == torch.float32 and offset.dtype == torch.float32


@pytest.mark.parametrize("model_dtype,input_dtype", [(torch.float32, torch.float64), (torch.float64, torch.float32),
                                                     (torch.float32, torch.float16), (torch.bfloat16, torch.float32)],
                         ids=str)
def test_the_example_input_may_have_another_dtype_than_the_model(model_dtype, input_dtype):
    net = user_siren(model_dtype)
    design = inrarch.compile(inrarch.derivatives(net, 1), torch.zeros(4, 2, dtype=input_dtype), width=BITS)
    reference = inrarch.compile(inrarch.derivatives(net, 1), torch.zeros(4, 2, dtype=model_dtype), width=BITS)
    assert design.report["formats"] == reference.report["formats"]


def test_a_float32_model_runs_in_verilator_within_the_tolerance():
    net = user_siren()
    fn = inrarch.derivatives(net, 1)
    design = inrarch.compile(fn, torch.zeros(6, 2))
    x = torch.rand(6, 2) * 2 - 1
    result = design.simulate(x)
    assert max(relative_errors(result.outputs, inrarch.reference(fn, x))) <= 1e-3
    assert result.cycles == design.report["cycles_predicted"] and not result.overflow


MODEL_FILE = '''
import torch

class Sine(torch.nn.Module):
    def __init__(self, a, b):
        super().__init__()
        self.linear = torch.nn.Linear(a, b)

    def forward(self, x):
        return torch.sin(30.0 * self.linear(x))

def build():
    torch.manual_seed(0)
    return torch.nn.Sequential(Sine(2, 8), torch.nn.Linear(8, 2))
'''


def test_the_cli_builds_a_float32_model_file(tmp_path, capsys):
    path = tmp_path / "model.py"
    path.write_text(MODEL_FILE)
    assert build_main(["--model", f"{path}:build", "--batch", "4", "--bits", str(BITS), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "top.v").read_text().startswith("/*")
    assert "cycles (predicted)" in capsys.readouterr().out


def test_numpy_inputs_of_any_float_dtype_give_the_same_reference():
    net = user_siren()
    x = np.random.default_rng(1).uniform(-1, 1, size=(3, 2))
    first = inrarch.reference(inrarch.derivatives(net, 1), x)
    second = inrarch.reference(inrarch.derivatives(net, 1), torch.tensor(x))
    assert all(torch.equal(a, b) for a, b in zip(first, second))

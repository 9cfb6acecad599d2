"""The op registry is the one place that knows an op: every other stage reads it."""

import math
import os
import re
import traceback

import numpy as np
import pytest
import torch

import inrarch
from inrarch import ops
from inrarch.capture import capture, source, supported
from inrarch.errors import CompileError
from inrarch.formats import assign_formats
from inrarch.ir import evaluate
from inrarch.lower import Target
from inrarch.passes import optimize
from cores.fixed import Q

SIREN = inrarch.models.siren(in_features=2, hidden=8, layers=2, out_features=1, w0=30.0, seed=0)


def documented_ops():
    """The op names in the first column of the "Ops" table of inrarch.ops' docstring."""
    table = ops.__doc__.split("Ops\n---\n")[1].split("\n\n")[0]
    names = set()
    for line in table.splitlines():
        leading = re.match(r"((?:``[a-z_]+``[, ]*)+)", line)
        if leading:
            names.update(re.findall(r"``([a-z_]+)``", leading.group(1)))
    return names


def test_every_documented_ir_op_has_exactly_one_spec():
    assert documented_ops() == set(ops.OPS)
    assert all(name == spec.name for name, spec in ops.OPS.items())


def test_every_op_but_input_has_float64_semantics_and_every_op_a_lowering_to_a_core():
    assert {name for name, spec in ops.OPS.items() if spec.semantics is None} == {"input"}
    assert all(spec.lowering is not None and spec.core_class.__module__.startswith("cores.")
               for spec in ops.OPS.values())


def test_capture_supports_exactly_one_translation_of_every_registered_aten_op():
    translated = ops.captured()
    assert translated <= set(supported())
    assert {"sin", "tanh_backward", "mm", "gt", "where", "view", "linalg_vector_norm"} <= translated
    assert all(hasattr(torch.ops.aten, name) for name in translated), "a translation names no aten op"
    with pytest.raises(ValueError, match="aten.tanh_backward is captured twice"):
        ops.captures("sigmoid", "tanh_backward")(lambda tr, target, args, kwargs: None)


def test_no_aten_op_is_both_translated_and_refused():
    refused = set(ops.REFUSED) | {name for spec in ops.OPS.values() for name in spec.refusals}
    assert not refused & ops.captured()
    assert ops.refusal("log") == "there is no log core"
    assert "reciprocal square-root" in ops.refusal("rsqrt")


def test_registering_an_ir_op_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        ops.register(ops.OpSpec("sin"))


def erf(values):
    return np.vectorize(math.erf, otypes=[np.float64])(values)


def test_a_new_op_registered_in_one_place_flows_through_capture_passes_evaluation_and_formats(monkeypatch):
    def fn(x):
        return torch.erf(3.0 * SIREN(x))

    x = torch.linspace(-1, 1, 10).reshape(5, 2)
    with pytest.raises(CompileError, match="unsupported op torch.erf"):
        capture(fn, x)

    spec = ops.OpSpec("erf", semantics=lambda node, args: erf(args[0] * node.attrs.get("scale", 1.0)),
                      bound=1.0, scaled=True)
    monkeypatch.setitem(ops.OPS, "erf", spec)
    ops.captures("erf", "erf")(lambda tr, target, args, kwargs: tr.nonlinear("erf", args[0]))

    graph, single = capture(fn, x)
    graph = optimize(graph)
    (node,) = [n for n in graph.nodes if n.op == "erf"]
    assert node.attrs["scale"] == 3.0 and node.inputs[0].op != "scale"   # the passes fused the scale
    expected = inrarch.reference(fn, x)[0].numpy()
    values = evaluate(graph, x.numpy())[graph.outputs[0]].reshape(expected.shape)
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12)
    formats = assign_formats(graph, width=16)
    assert formats[node] == Q.for_range(1.0, 16)   # the bound, not a calibrated range
    with pytest.raises(CompileError, match="no core implements IR op 'erf'"):
        spec.lower(node, formats, Target(), 1)


def frame(path):
    return traceback.FrameSummary(path, 1, "f", line="")


def test_source_lines_skip_every_file_of_inrarch_but_its_model_zoo():
    package = os.path.dirname(inrarch.__file__)
    for machinery in ("capture/translation.py", "capture/a_module_added_later.py", "derivatives.py", "design.py"):
        assert not source._is_user_frame(frame(os.path.join(package, machinery)))
    assert not source._is_user_frame(frame(torch.nn.functional.__file__))
    assert source._is_user_frame(frame(inrarch.models.__file__))
    assert source._is_user_frame(frame(__file__))

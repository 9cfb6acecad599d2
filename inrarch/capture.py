"""Capture: a torch function of one tensor → inrarch IR for one sample.

The function is traced with ``make_fx`` on a single sample (batch 1), which records every aten op
that torch autograd and torch.func run, backward passes included. The aten graph is then translated
op by op, in order; constants are real tensors, so in-place ops on them (``tangent[..., i] = 1``)
simply run. Only when an in-place op touches a streamed tensor is the graph traced a second time
through ``functionalize``, which replaces mutations and views by pure ops. Translation:

* anything that does not depend on the input is evaluated right away and becomes a constant;
* data-movement ops (views, reshapes, transposes, slices, cat/stack, scatters of constants) on
  streamed tensors become ``gather`` nodes, found by running the op on tensors of element indices;
* matmuls against constants become ``matmul`` nodes that share one stored matrix for W and Wᵀ;
* arithmetic with constants folds in (``x * 0`` vanishes, ``x * c`` becomes ``scale``, ...);
* comparisons with zero become ``step`` nodes and ``where`` a blend by them (relu's derivatives);
  silu, elu and leaky_relu are decomposed by ``torch._decomp`` while tracing.

Anything else raises :class:`CompileError` with the aten op, why it has no hardware where that is
known (``log``: no log core; derivatives of ``sqrt``: no reciprocal), and the user's source line
as ``file:line: code``.
"""

import contextlib
import inspect
import os
import traceback

import numpy as np
import torch
import torch._decomp
from torch.fx.experimental import proxy_tensor
from torch.fx.experimental.proxy_tensor import make_fx
from torch.func import functionalize
from torch.utils._python_dispatch import TorchDispatchMode

from . import ir
from .errors import CompileError
from .evaluation import first_line, flatten, float64_tensors, single_threaded

__all__ = ["capture", "check_signature"]

aten = torch.ops.aten

_STRUCTURAL = {
    "view", "view_copy", "_unsafe_view", "reshape", "expand", "expand_copy", "permute", "permute_copy",
    "t", "t_copy", "transpose", "transpose_copy", "unsqueeze", "unsqueeze_copy", "squeeze", "squeeze_copy",
    "select", "select_copy", "slice", "slice_copy", "cat", "stack", "alias", "alias_copy", "clone",
    "_to_copy", "lift_fresh_copy", "detach", "detach_copy", "contiguous", "select_scatter", "slice_scatter",
    "diagonal", "diagonal_copy", "diagonal_scatter", "select_backward", "slice_backward",
    "split_with_sizes", "split_with_sizes_copy", "split", "split_copy", "unbind", "unbind_copy",
    "flatten", "unflatten", "movedim", "narrow", "narrow_copy", "repeat", "index_select",
}
_CREATION_LIKE = {"zeros_like", "ones_like", "full_like", "empty_like", "new_zeros", "new_ones", "new_full",
                  "new_empty", "fill", "zeros", "ones", "full", "scalar_tensor", "_efficientzerotensor",
                  "_new_zeros_with_same_feature_meta"}
_UNARY = {"sin": "sin", "cos": "cos", "tanh": "tanh", "sigmoid": "sigmoid", "exp": "exp", "relu": "relu",
          "sqrt": "sqrt"}
_ARITHMETIC = {"add", "sub", "mul", "div", "neg", "rsub", "mm", "addmm", "bmm", "mv", "dot", "sum", "pow", "expm1",
               "tanh_backward", "sigmoid_backward", "threshold_backward", "softplus", "softplus_backward",
               "linalg_vector_norm"}
# Comparisons are steps of a difference; relu's derivative is written with them (and ``where``).
_COMPARISONS = {"gt", "ge", "lt", "le"}
# Activations that torch._decomp rewrites into the ops above while tracing.
_DECOMPOSED = {"silu", "silu_backward", "elu", "elu_backward", "leaky_relu", "leaky_relu_backward"}
SUPPORTED = sorted(_STRUCTURAL | _CREATION_LIKE | set(_UNARY) | _ARITHMETIC | _COMPARISONS | {"where"} | _DECOMPOSED)
# Why common ops have no hardware: said in the error, so the user knows what to change.
_WHY = {
    "log": "there is no log core", "log1p": "there is no log core", "log_sigmoid_forward": "there is no log core",
    "rsqrt": "there is no reciprocal square-root core (a derivative of sqrt needs one)",
    "norm": "use torch.linalg.vector_norm (the 2-norm is supported)",
    "reciprocal": "division by a streamed value is not supported",
    "eq": "equality tests of streamed values are not supported (torch writes the derivative of a norm with "
          "one, and that derivative also divides by the norm)",
    "nonzero": "its output shape depends on the data (dynamic shapes are not supported)",
    "masked_select": "its output shape depends on the data (dynamic shapes are not supported)",
    "index": "indexing with a tensor is not supported (boolean masks give data-dependent shapes)",
    "_local_scalar_dense": "data-dependent control flow is not supported: the function reads a tensor's value "
                           "in Python (if, bool(), .item())",
    "view_as_complex": "complex numbers are not supported",
    "abs": "there is no abs core", "sign": "there is no sign core",
    "gelu": "GELU needs erf, or for approximate='tanh' a division in its second derivative",
    "clamp": "there is no clamp core",
    "bernoulli": "random values (dropout in train mode) are not supported: call model.eval() first",
    "native_dropout": "random values (dropout in train mode) are not supported: call model.eval() first",
}
_IGNORED = {"is_same_size", "_has_same_storage_numel", "copy_", "copy", "sym_size", "_assert_tensor_metadata"}


class _Sym:
    """A streamed (input-dependent) value during translation."""

    __slots__ = ("node",)

    def __init__(self, node):
        self.node = node

    @property
    def shape(self):
        return self.node.shape


def _op_name(target):
    name = getattr(target, "__name__", str(target))
    return name.split(".")[0]


class _Translator:
    def __init__(self, sample_shape):
        self.nodes = []
        self.weights = {}
        self.input = self._new("input", [], tuple(sample_shape))
        self.source = ""
        self.masks = set()   # nodes holding only 0 and 1: results of comparisons

    def _new(self, op, inputs, shape, **attrs):
        node = ir.Node(op, [s.node if isinstance(s, _Sym) else s for s in inputs], tuple(int(d) for d in shape),
                       attrs, source=getattr(self, "source", ""))
        self.nodes.append(node)
        return node

    def sym(self, op, inputs, shape, **attrs):
        return _Sym(self._new(op, inputs, shape, **attrs))

    # data movement -------------------------------------------------------------------------
    def structural(self, target, args, kwargs):
        """Run a data-movement op on element indices to find where each output element comes from."""
        sources, offset = [], 1

        def to_index(value):
            nonlocal offset
            if isinstance(value, _Sym):
                sources.append(("sym", value, offset))
                idx = torch.arange(offset, offset + value.node.numel, dtype=torch.float64).reshape(value.shape)
                offset += value.node.numel
                return idx
            if isinstance(value, torch.Tensor):
                flat = value.detach().to(torch.float64).reshape(-1)
                sources.append(("const", flat, offset))
                idx = torch.arange(offset, offset + flat.numel(), dtype=torch.float64).reshape(value.shape)
                offset += flat.numel()
                return idx
            if isinstance(value, (list, tuple)):
                return type(value)(to_index(v) for v in value)
            return value

        index_args = to_index(list(args))
        index_kwargs = {k: (torch.float64 if k == "dtype" else to_index(v)) for k, v in kwargs.items()
                        if k not in ("device", "layout", "pin_memory", "memory_format")}
        result = target(*index_args, **index_kwargs)

        starts = np.array([start for _, _, start in sources], dtype=np.int64)

        def to_value(index):
            if isinstance(index, (list, tuple)):
                return [to_value(i) for i in index]
            positions = index.reshape(-1).numpy().astype(np.int64)
            owner = np.searchsorted(starts, positions, side="right") - 1
            entries, used = [], []
            for position, k in zip(positions.tolist(), owner.tolist()):
                if position == 0:
                    entries.append(0.0)
                    continue
                kind, value, start = sources[k]
                if kind == "const":
                    entries.append(float(value[position - start]))
                    continue
                if value not in used:
                    used.append(value)
                entries.append((used.index(value), position - start))
            if not used:
                return torch.tensor(entries, dtype=torch.float64).reshape(index.shape)
            if (len(used) == 1 and tuple(index.shape) == used[0].shape
                    and entries == [(0, k) for k in range(used[0].node.numel)]):
                return used[0]
            return self.sym("gather", used, index.shape, entries=tuple(entries))

        return to_value(result)

    def expand(self, value, shape):
        if tuple(value.shape) == tuple(shape):
            return value
        return self.structural(aten.expand.default, [value, list(shape)], {})

    # constants ---------------------------------------------------------------------------
    def weight(self, matrix):
        """The stored matrix for ``matrix`` (R × C) and whether it is read transposed."""
        matrix = np.ascontiguousarray(matrix.detach().numpy().astype(np.float64))
        key = ir.Weight("w", matrix).digest
        if key in self.weights:
            return self.weights[key], False
        transposed_key = ir.Weight("w", np.ascontiguousarray(matrix.T)).digest
        if transposed_key in self.weights:
            return self.weights[transposed_key], True
        weight = ir.Weight(f"w{len(self.weights)}", matrix)
        self.weights[key] = weight
        return weight, False

    # arithmetic --------------------------------------------------------------------------
    def binary(self, name, a, b, alpha=1):
        if alpha != 1:
            b = self.binary("mul", b, torch.tensor(float(alpha), dtype=torch.float64))
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            return {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}[name](a, b)
        shape = torch.broadcast_shapes(tuple(a.shape), tuple(b.shape))
        if isinstance(a, _Sym) and isinstance(b, _Sym):
            if name == "div":
                raise CompileError(f"division by a streamed tensor is not supported at {self.source}")
            return self.sym(name, [self.expand(a, shape), self.expand(b, shape)], shape)
        if isinstance(a, torch.Tensor):
            if name == "sub":
                return self.binary("add", self.unary_neg(b), a)
            if name == "div":
                raise CompileError(f"division by a streamed tensor is not supported at {self.source}")
            a, b = b, a
        const = torch.broadcast_to(b.to(torch.float64), shape)
        a = self.expand(a, shape)
        if name == "sub":
            name, const = "add", -const
        if name == "div":
            name, const = "mul", 1.0 / const
        values = const.numpy()
        if name == "add":
            return a if not np.any(values) else self.sym("add_const", [a], shape, values=values.copy())
        if not np.any(values):
            return torch.zeros(shape, dtype=torch.float64)
        if np.all(values == values.flat[0]):
            value = float(values.flat[0])
            if value == 1.0:
                return a
            if value == -1.0:
                return self.unary_neg(a)
            return self.sym("scale", [a], shape, value=value)
        return self.sym("mul_const", [a], shape, values=values.copy())

    def unary_neg(self, a):
        if isinstance(a, torch.Tensor):
            return -a
        return self.sym("neg", [a], a.shape)

    def matmul(self, a, b):
        if isinstance(a, _Sym) and isinstance(b, _Sym):
            raise CompileError(f"a matrix product of two streamed tensors is not supported at {self.source}")
        if isinstance(b, torch.Tensor):
            if not b.detach().numpy().any():
                return torch.zeros((a.shape[0], b.shape[1]), dtype=torch.float64)
            weight, transposed = self.weight(b.T)
            return self.sym("matmul", [a], (a.shape[0], b.shape[1]), weight=weight, transposed=transposed)
        # (A @ b) = (bᵀ @ Aᵀ)ᵀ: stream bᵀ through the stored Aᵀ.
        b_t = self.structural(aten.t.default, [b], {})
        product = self.matmul(b_t, a.T)
        return product.T if isinstance(product, torch.Tensor) else self.structural(aten.t.default, [product], {})

    def batched_matmul(self, a, b):
        """``bmm``: one matmul over all rows when every batch entry has the same constant matrix
        (vmap of a per-sample function), else one matmul per batch entry."""
        batch, rows, inner = a.shape
        columns = b.shape[-1]
        if isinstance(b, torch.Tensor) and bool((b == b[:1]).all()):
            flat = self.structural(aten.reshape.default, [a, [batch * rows, inner]], {})
            product = self.matmul(flat, b[0])
            return self.structural(aten.reshape.default, [product, [batch, rows, columns]], {}) \
                if isinstance(product, _Sym) else product.reshape(batch, rows, columns)
        parts = [self.matmul(self.structural(aten.select.int, [a, 0, k], {}),
                             self.structural(aten.select.int, [b, 0, k], {}) if isinstance(b, _Sym) else b[k])
                 for k in range(batch)]
        if not any(isinstance(p, _Sym) for p in parts):
            return torch.stack(parts)
        return self.structural(aten.stack.default, [parts], {})

    def reduce_sum(self, a, dims=None, keepdim=False):
        rank = len(a.shape)
        dims = list(range(rank)) if dims is None or len(dims) == 0 else sorted(d % rank for d in dims)
        kept = [d for d in range(rank) if d not in dims]
        moved = self.structural(aten.permute.default, [a, kept + dims], {})
        group = int(np.prod([a.shape[d] for d in dims], dtype=np.int64))
        out_shape = [a.shape[d] if d in kept else 1 for d in range(rank)] if keepdim else [a.shape[d] for d in kept]
        if group == 1:
            return self.structural(aten.reshape.default, [moved, out_shape], {})
        return self.sym("sum", [moved], out_shape, group=group)

    def nonlinear(self, op, a):
        return self.sym(op, [a], a.shape, scale=1.0)

    def compare(self, name, a, b):
        """``a > b`` is ``step(a - b)``; the other comparisons follow from it exactly, at equality
        too (``a >= b`` is ``1 - step(b - a)``)."""
        a, b = (_scalar(v) if isinstance(v, (int, float)) else v for v in (a, b))
        if name in ("lt", "ge"):
            a, b = b, a
        difference = self.binary("sub", a, b)
        step = self.sym("step", [difference], difference.shape, scale=1.0)
        result = step if name in ("gt", "lt") else self.binary("add", self.unary_neg(step), _scalar(1.0))
        self.masks.add(result.node)
        return result

    def where(self, condition, a, b):
        """``where(c, a, b) = b + c * (a - b)``, exact because ``c`` is 0 or 1."""
        a, b = (_scalar(v) if isinstance(v, (int, float)) else v for v in (a, b))
        if isinstance(condition, torch.Tensor):
            condition = condition.to(torch.float64)
        elif condition.node not in self.masks:
            raise CompileError(f"aten.where at {self.source} is supported only with a comparison as its condition")
        return self.binary("add", b, self.binary("mul", condition, self.binary("sub", a, b)))


def _translate_call(tr, target, args, kwargs):
    name = _op_name(target.overloadpacket if hasattr(target, "overloadpacket") else target)
    streamed = any(isinstance(v, _Sym) for v in flatten(args)) or any(isinstance(v, _Sym) for v in flatten(kwargs.values()))
    if not streamed:
        return target(*args, **kwargs)
    if isinstance(target, torch._ops.OpOverload) and target._schema.is_mutable:
        raise _NeedsPureGraph()
    if name in _STRUCTURAL:
        dtype = kwargs.get("dtype")
        if name == "_to_copy" and dtype is not None and not dtype.is_floating_point:
            if dtype == torch.bool and args[0].node in tr.masks:
                return args[0]
            kind = "complex" if dtype.is_complex else "integer" if dtype != torch.bool else "boolean"
            raise CompileError(f"unsupported dtype {dtype} at {tr.source}: {kind} values are not supported, "
                               "inrarch computes with real numbers")
        result = tr.structural(target, args, kwargs)
        if args and isinstance(args[0], _Sym) and args[0].node in tr.masks and isinstance(result, _Sym):
            tr.masks.add(result.node)
        return result
    if name in _COMPARISONS:
        return tr.compare(name, args[0], args[1])
    if name == "where":
        return tr.where(*args)
    if name in _CREATION_LIKE:
        concrete = [torch.zeros(v.shape, dtype=torch.float64) if isinstance(v, _Sym) else v for v in args]
        return target(*concrete, **kwargs)
    if name in _UNARY:
        return tr.nonlinear(_UNARY[name], args[0])
    if name == "neg":
        return tr.unary_neg(args[0])
    if name == "expm1":
        return tr.binary("add", tr.nonlinear("exp", args[0]), _scalar(-1.0))
    if name in ("add", "sub", "mul", "div"):
        return tr.binary(name, args[0], args[1] if isinstance(args[1], (torch.Tensor, _Sym)) else torch.tensor(float(args[1]), dtype=torch.float64),
                         alpha=kwargs.get("alpha", 1))
    if name == "rsub":
        return tr.binary("sub", torch.tensor(float(args[1]), dtype=torch.float64) if not isinstance(args[1], (torch.Tensor, _Sym)) else args[1], args[0])
    if name == "mm":
        return tr.matmul(args[0], args[1])
    if name == "bmm":
        return tr.batched_matmul(args[0], args[1])
    if name == "mv":
        column = tr.structural(aten.unsqueeze.default, [args[1], 1], {}) if isinstance(args[1], _Sym) else args[1][:, None]
        product = tr.matmul(args[0], column)
        return tr.structural(aten.squeeze.dim, [product, 1], {}) if isinstance(product, _Sym) else product[:, 0]
    if name == "dot":
        return tr.reduce_sum(tr.binary("mul", args[0], args[1]))
    if name == "addmm":
        product = tr.matmul(args[1], args[2])
        product = tr.binary("mul", product, torch.tensor(float(kwargs.get("alpha", 1)), dtype=torch.float64)) if kwargs.get("alpha", 1) != 1 else product
        bias = args[0] if kwargs.get("beta", 1) == 1 else tr.binary("mul", args[0], torch.tensor(float(kwargs["beta"]), dtype=torch.float64))
        return tr.binary("add", product, bias)
    if name == "sum":
        return tr.reduce_sum(args[0], args[1] if len(args) > 1 else kwargs.get("dim"), kwargs.get("keepdim", args[2] if len(args) > 2 else False))
    if name == "pow":
        exponent = args[1]
        if isinstance(exponent, (int, float)) and exponent == 0:
            return torch.ones(args[0].shape, dtype=torch.float64)
        if isinstance(exponent, (int, float)) and float(exponent).is_integer() and 1 <= exponent <= 8:
            result = args[0]
            for _ in range(int(exponent) - 1):
                result = tr.binary("mul", result, args[0])
            return result
        raise CompileError(f"pow with exponent {exponent!r} at {tr.source} is not supported; only integer powers 0..8 are")
    if name == "tanh_backward":
        grad, y = args
        one_minus = tr.binary("add", tr.unary_neg(tr.binary("mul", y, y)), torch.tensor(1.0, dtype=torch.float64))
        return tr.binary("mul", grad, one_minus)
    if name == "sigmoid_backward":
        grad, y = args
        slope = tr.binary("mul", y, tr.binary("add", tr.unary_neg(y), torch.tensor(1.0, dtype=torch.float64)))
        return tr.binary("mul", grad, slope)
    if name == "softplus":
        x, beta = args[0], float(args[1]) if len(args) > 1 else 1.0
        # Past torch's threshold softplus is x itself; the core's table gives that to within an ulp.
        value = tr.sym("softplus", [x], x.shape, scale=beta)
        return value if beta == 1.0 else tr.binary("mul", value, _scalar(1.0 / beta))
    if name == "softplus_backward":
        grad, x, beta = args[0], args[1], float(args[2])
        return tr.binary("mul", grad, tr.sym("sigmoid", [x], x.shape, scale=beta))
    if name == "linalg_vector_norm":
        order = args[1] if len(args) > 1 else kwargs.get("ord", 2)
        if order != 2 or kwargs.get("dtype") is not None:
            raise CompileError(f"aten.linalg_vector_norm with ord={order!r} at {tr.source} is not supported; "
                               "only the 2-norm is")
        dim = args[2] if len(args) > 2 else kwargs.get("dim")
        keepdim = args[3] if len(args) > 3 else kwargs.get("keepdim", False)
        squares = tr.reduce_sum(tr.binary("mul", args[0], args[0]), dim, keepdim)
        return tr.nonlinear("sqrt", squares)
    if name == "threshold_backward":
        grad, y, threshold = args
        if threshold != 0:
            raise CompileError(f"threshold_backward with threshold {threshold} at {tr.source} is not supported")
        return tr.binary("mul", grad, tr.sym("step", [y], y.shape, scale=1.0))
    raise CompileError(_unsupported_message(name, tr.source))


def _scalar(value):
    return torch.tensor(float(value), dtype=torch.float64)


def _unsupported_message(name, source):
    why = f" ({_WHY[name]})" if name in _WHY else ""
    return f"unsupported op aten.{name}{why} at {source}; supported: " + ", ".join(SUPPORTED)


def _base_name(target):
    name = _op_name(target.overloadpacket if hasattr(target, "overloadpacket") else target)
    if name.endswith("_") and not name.endswith("__"):
        name = name[:-1]  # in-place variants translate like their pure forms
    return name


def _first_unsupported(graph):
    for fx_node in graph.nodes:
        if fx_node.op != "call_function":
            continue
        name = _base_name(fx_node.target)
        if name not in SUPPORTED and name != "getitem" and name not in _IGNORED:
            return fx_node, name
    return None, None


# Where an op came from ----------------------------------------------------------------------
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_MACHINERY = {os.path.join(os.path.dirname(__file__), name)
              for name in ("capture.py", "derivatives.py", "compiler.py", "evaluation.py")}


class _OpLocator(TorchDispatchMode):
    """Runs the function eagerly and keeps the Python stack of every call of ``target``."""

    def __init__(self, target):
        super().__init__()
        self.target, self.stacks = target, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is self.target:
            self.stacks.append(traceback.extract_stack())
        return func(*args, **(kwargs or {}))


def _describe_frame(frame):
    path = os.path.relpath(frame.filename)
    path = frame.filename if path.startswith("..") else path
    return f"{path}:{frame.lineno}: {(frame.line or '').strip()}"


def _source_line(fn, sample, target, occurrence):
    """``file:line: code`` of the user's line that ran the ``occurrence``-th ``target`` op.

    make_fx only records stack traces inside ``forward`` methods, and recording them costs a
    third of the tracing time, so the line is found only when an error needs it: the function
    runs once more, eagerly, under a dispatch mode that records the Python stack at that op.
    """
    locator = _OpLocator(target)
    try:
        with torch.enable_grad(), locator:
            fn(sample.clone())
    except Exception:
        pass
    # eager runs may call an op a different number of times than the trace recorded
    stacks = locator.stacks
    stack = stacks[min(occurrence, len(stacks) - 1)] if stacks else []
    # keep only the frames inside ``fn``: those after this function's own frame
    inside = [k for k, f in enumerate(stack) if f.filename == __file__ and f.name == "_source_line"]
    stack = stack[inside[-1] + 1:] if inside else stack
    user = [f for f in stack if not f.filename.startswith(_TORCH_DIR) and f.filename not in _MACHINERY]
    modules = [f for f in stack if f.filename.startswith(os.path.join(_TORCH_DIR, "nn", ""))]
    frames = user or modules
    if not frames:
        return "(source line not found: the op may come from torch's decomposition of another op)"
    return _describe_frame(frames[-1])


def _occurrences(graph):
    """The number of earlier nodes with the same target, for every node of ``graph``."""
    seen, index = {}, {}
    for fx_node in graph.nodes:
        index[fx_node] = seen.get(fx_node.target, 0)
        seen[fx_node.target] = index[fx_node] + 1
    return index


# Tracing ------------------------------------------------------------------------------------
@contextlib.contextmanager
def _lean_tracing():
    """make_fx keeps a fake copy of every traced value in ``node.meta["val"]``, and for real tensors
    builds a new FakeTensorMode for each one: that is most of the tracing time, and capture never
    reads those copies. Skip them for the duration of one trace."""
    original = proxy_tensor.extract_val

    def extract_val(val, include_real=False):
        if isinstance(val, torch.Tensor) and not proxy_tensor.is_fake(val):
            return None
        return original(val, include_real)

    proxy_tensor.extract_val = extract_val
    try:
        yield
    finally:
        proxy_tensor.extract_val = original


def _decompositions():
    return torch._decomp.get_decompositions([getattr(aten, name) for name in sorted(_DECOMPOSED)])


def _trace(fn, sample):
    try:
        with _lean_tracing():
            return make_fx(fn, decomposition_table=_decompositions())(sample)
    except CompileError:
        raise
    except Exception as error:
        message = first_line(error)
        if "data-dependent" in message or "Data-dependent" in message or "_local_scalar_dense" in message:
            raise CompileError("data-dependent control flow is not supported: the function reads the value of a "
                               "tensor in Python (if, bool(), .item(), a shape that depends on values): "
                               f"{_where(error)}") from None
        raise CompileError(f"could not trace the function: {type(error).__name__}: {message}") from None


def _where(error):
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.startswith(_TORCH_DIR) and f.filename not in _MACHINERY]
    return _describe_frame(frames[-1]) if frames else "(source line not found)"


def _functional(graph_module, sample):
    with _lean_tracing():
        pure = make_fx(functionalize(graph_module, remove="mutations_and_views"),
                       decomposition_table=_decompositions())(sample)
    pure.graph.eliminate_dead_code()
    return pure


class _NeedsPureGraph(Exception):
    """An in-place op touches a streamed tensor: translate the functionalized graph instead."""


def check_signature(fn):
    """Refuse a function (or module) that needs more than one tensor argument."""
    try:
        parameters = inspect.signature(fn.forward if isinstance(fn, torch.nn.Module) else fn).parameters.values()
    except (TypeError, ValueError):
        return
    required = [p.name for p in parameters
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    if len(required) > 1:
        raise CompileError(f"the function takes {len(required)} tensors ({', '.join(required)}); only functions of "
                           "one tensor are supported: concatenate the inputs into one (batch, in_features) tensor")


def _check_input(example_input):
    if not isinstance(example_input, torch.Tensor):
        raise CompileError(f"the example input must be a torch.Tensor, not {type(example_input).__name__}")
    if example_input.dtype.is_complex or not example_input.dtype.is_floating_point:
        raise CompileError(f"unsupported input dtype {example_input.dtype}: inputs must be real floating-point numbers")


# Layers whose train mode does not compute each sample on its own, deterministically.
_TRAIN_MODE_LAYERS = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._BatchNorm,
                      torch.nn.modules.instancenorm._InstanceNorm)


def _check_train_mode(modules):
    for module in modules:
        for name, layer in module.named_modules():
            if layer.training and isinstance(layer, _TRAIN_MODE_LAYERS):
                kind = type(layer).__name__
                why = ("is random" if isinstance(layer, torch.nn.modules.dropout._DropoutNd)
                       else "normalizes with statistics of the whole batch")
                raise CompileError(f"the model is in train mode, where its {kind} layer {name or '(the model)'!r} {why}: "
                                   "call model.eval() before compiling")


def capture(fn, example_input):
    """Trace ``fn`` on one sample of ``example_input`` and translate it to an :class:`ir.Graph`.

    Returns the graph and whether ``fn`` returns a single tensor (rather than a list or tuple).
    Raises :class:`CompileError` naming the op and the user's source line for anything the
    hardware cannot compute.
    """
    check_signature(fn)
    _check_input(example_input)
    with single_threaded(), float64_tensors(fn) as modules:
        _check_train_mode(modules)
        return _capture(fn, example_input[:1].detach().to(torch.float64).clone())


def _capture(fn, sample):
    traced = _trace(fn, sample)
    occurrence = _occurrences(traced.graph)
    fx_node, name = _first_unsupported(traced.graph)
    if fx_node is not None:
        raise CompileError(_unsupported_message(name, _source_line(fn, sample, fx_node.target, occurrence[fx_node])))
    traced.graph.eliminate_dead_code()
    try:
        return _translate(traced, fn, sample, occurrence)
    except _NeedsPureGraph:
        return _translate(_functional(traced, sample), fn, sample, None)


def _translate(module, fn, sample, occurrence):
    tr = _Translator(tuple(sample.shape))
    env = {}
    outputs = None
    for fx_node in module.graph.nodes:
        tr.source = f"aten.{_op_name(fx_node.target)}" if fx_node.op == "call_function" else ""
        if fx_node.op == "placeholder":
            env[fx_node] = _Sym(tr.input)
        elif fx_node.op == "get_attr":
            env[fx_node] = getattr(module, fx_node.target).detach().to(torch.float64)
        elif fx_node.op == "call_function":
            args = torch.fx.node.map_arg(fx_node.args, lambda n: env[n])
            kwargs = torch.fx.node.map_arg(fx_node.kwargs, lambda n: env[n])
            if _op_name(fx_node.target) == "getitem":
                env[fx_node] = args[0][args[1]]
                continue
            try:
                env[fx_node] = _translate_call(tr, fx_node.target, args, kwargs)
            except (CompileError, _NeedsPureGraph) as error:
                if isinstance(error, CompileError) and occurrence is not None:
                    where = _source_line(fn, sample, fx_node.target, occurrence[fx_node])
                    raise CompileError(str(error).replace(f"at {tr.source}", f"at {where}", 1)) from None
                raise
            except Exception as error:
                raise CompileError(f"cannot translate aten.{_op_name(fx_node.target)}: {error}") from error
        elif fx_node.op == "output":
            outputs = torch.fx.node.map_arg(fx_node.args[0], lambda n: env[n])
    single = not isinstance(outputs, (list, tuple))
    outputs = [outputs] if single else list(flatten(outputs))
    out_nodes = []
    for value in outputs:
        if not isinstance(value, (torch.Tensor, _Sym)):
            raise CompileError(f"the function returns a {type(value).__name__}; only tensors are supported as outputs")
        if isinstance(value, torch.Tensor):
            # a constant output still streams once per sample: emit it behind the input
            value = tr.sym("gather", [_Sym(tr.input)], tuple(value.shape),
                           entries=tuple(float(v) for v in value.reshape(-1).tolist()))
        out_nodes.append(value.node)
    graph = ir.Graph(tr.input, out_nodes, tr.nodes, tr.weights.values())
    graph.topological().rename()
    return graph, single

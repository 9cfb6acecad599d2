"""Translation: an aten graph, op by op in order, becomes inrarch IR for one sample.

Values that do not depend on the input are real tensors, so ops on them simply run; an op with a
streamed argument is translated by what :mod:`inrarch.ops` registers for its name. Ops that make
new tensors shaped like a streamed one (``zeros_like``, ...) run on zeros, and anything else is
refused with why, where :mod:`inrarch.ops` knows.
"""

import numpy as np
import torch

from .. import ir, ops
from ..errors import CompileError
from ..evaluation import flatten
from .runtime import RuntimeTensor, WeightProgram
from .source import source_line
from .tracing import DECOMPOSED

__all__ = ["translate", "supported", "user_name", "writable", "unsupported_message", "first_unsupported",
           "NeedsPureGraph"]

aten = torch.ops.aten

_CREATION_LIKE = {"zeros_like", "ones_like", "full_like", "empty_like", "new_zeros", "new_ones", "new_full",
                  "new_empty", "fill", "zeros", "ones", "full", "scalar_tensor", "_efficientzerotensor",
                  "_new_zeros_with_same_feature_meta"}
_IGNORED = {"is_same_size", "_has_same_storage_numel", "copy_", "copy", "sym_size", "_assert_tensor_metadata"}


class NeedsPureGraph(Exception):
    """An in-place op touches a streamed tensor: translate the functionalized graph instead."""


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
    """The IR of one trace as it grows: the ``tr`` that translations (:mod:`inrarch.ops`) build with."""

    def __init__(self, sample_shape):
        self.nodes = []
        self.weights = {}
        self.vectors = {}
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

    @staticmethod
    def streamed(value):
        """Whether ``value`` depends on the input (else it is a tensor or a Python number)."""
        return isinstance(value, _Sym)

    @staticmethod
    def constant(value):
        """The number ``value`` as a float64 tensor."""
        return _scalar(value)

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
            if isinstance(value, RuntimeTensor):
                raise CompileError(f"values computed from the parameters are moved together with streamed values "
                                   f"at {self.source}; with runtime weights only matmuls and element-wise "
                                   "arithmetic may read parameters")
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

    def move(self, target, args, kwargs):
        """An aten data-movement op: a ``gather`` (see :meth:`structural`), which keeps reading a
        comparison's result as 0 and 1; a cast is one only to a floating-point type (or to bool,
        of a comparison's result)."""
        dtype = kwargs.get("dtype")
        if _op_name(target) == "_to_copy" and dtype is not None and not dtype.is_floating_point:
            if dtype == torch.bool and args[0].node in self.masks:
                return args[0]
            kind = "complex" if dtype.is_complex else "integer" if dtype != torch.bool else "boolean"
            raise CompileError(f"unsupported dtype {dtype} at {self.source}: {kind} values are not supported, "
                               "inrarch computes with real numbers")
        result = self.structural(target, args, kwargs)
        if args and isinstance(args[0], _Sym) and args[0].node in self.masks and isinstance(result, _Sym):
            self.masks.add(result.node)
        return result

    def expand(self, value, shape):
        if tuple(value.shape) == tuple(shape):
            return value
        return self.structural(aten.expand.default, [value, list(shape)], {})

    # constants ---------------------------------------------------------------------------
    def weight(self, matrix):
        """The stored matrix for ``matrix`` (R × C) and whether it is read transposed."""
        if isinstance(matrix, RuntimeTensor):
            return self._runtime_weight(matrix)
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

    def _runtime_weight(self, matrix):
        if matrix.fingerprint in self.weights:
            return self.weights[matrix.fingerprint], False
        transposed = matrix.T
        if transposed.fingerprint in self.weights:
            return self.weights[transposed.fingerprint], True
        weight = ir.Weight(f"w{len(self.weights)}", matrix.example.numpy().copy(), runtime=matrix.index,
                           fingerprint=matrix.fingerprint)
        self.weights[matrix.fingerprint] = weight
        return weight, False

    def vector(self, values):
        """The stored vector of a runtime ``add_const`` or ``mul_const`` operand."""
        if values.fingerprint not in self.vectors:
            self.vectors[values.fingerprint] = ir.Weight(f"v{len(self.vectors)}", values.example.numpy().copy(),
                                                         runtime=values.index, fingerprint=values.fingerprint)
        return self.vectors[values.fingerprint]

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
        if isinstance(const, RuntimeTensor):
            # The values change with the weights: no folding of zeros, ones or a common factor.
            return self.sym(f"{name}_const", [a], shape, values=self.vector(const))
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

    def matmul(self, op, a, b):
        """``a @ b`` with one operand constant: an ``op`` node (the registry's matrix product) that
        streams the other through the stored matrix."""
        if isinstance(a, _Sym) and isinstance(b, _Sym):
            raise CompileError(f"a matrix product of two streamed tensors is not supported at {self.source}")
        if isinstance(b, torch.Tensor):
            if not isinstance(b, RuntimeTensor) and not b.detach().numpy().any():
                return torch.zeros((a.shape[0], b.shape[1]), dtype=torch.float64)
            weight, transposed = self.weight(b.T)
            return self.sym(op, [a], (a.shape[0], b.shape[1]), weight=weight, transposed=transposed)
        # (A @ b) = (bᵀ @ Aᵀ)ᵀ: stream bᵀ through the stored Aᵀ.
        b_t = self.structural(aten.t.default, [b], {})
        product = self.matmul(op, b_t, a.T)
        return product.T if isinstance(product, torch.Tensor) else self.structural(aten.t.default, [product], {})

    def batched_matmul(self, op, a, b):
        """``bmm``: one matmul over all rows when every batch entry has the same constant matrix
        (vmap of a per-sample function), else one matmul per batch entry."""
        batch, rows, inner = a.shape
        columns = b.shape[-1]
        if isinstance(b, torch.Tensor) and bool((b == b[:1]).all()):
            flat = self.structural(aten.reshape.default, [a, [batch * rows, inner]], {})
            product = self.matmul(op, flat, b[0])
            return self.structural(aten.reshape.default, [product, [batch, rows, columns]], {}) \
                if isinstance(product, _Sym) else product.reshape(batch, rows, columns)
        parts = [self.matmul(op, self.structural(aten.select.int, [a, 0, k], {}),
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

    def nonlinear(self, op, a, scale=1.0):
        """``op(scale * a)`` for an op registered with :func:`inrarch.ops.nonlinear`."""
        return self.sym(op, [a], a.shape, scale=scale)

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
    values = list(flatten(args)) + list(flatten(kwargs.values()))
    streamed = any(isinstance(v, _Sym) for v in values)
    mutable = isinstance(target, torch._ops.OpOverload) and target._schema.is_mutable
    if mutable and (streamed or any(isinstance(v, RuntimeTensor) for v in values)):
        raise NeedsPureGraph()
    if not streamed:
        return target(*args, **kwargs)
    translation = ops.translation(name)
    if translation is not None:
        return translation(tr, target, args, kwargs)
    if name in _CREATION_LIKE:
        concrete = [torch.zeros(v.shape, dtype=torch.float64) if isinstance(v, _Sym) else v for v in args]
        return target(*concrete, **kwargs)
    raise CompileError(unsupported_message(name, tr.source))


def _scalar(value):
    return torch.tensor(float(value), dtype=torch.float64)


def supported():
    """The names of the aten ops that capture translates, sorted."""
    return sorted(ops.captured() | _CREATION_LIKE | DECOMPOSED)


# Aten ops whose torch function has another name than the op's.
_TORCH_NAMES = {"log_sigmoid_forward": "torch.nn.functional.logsigmoid", "_local_scalar_dense": "Tensor.item",
                "linalg_vector_norm": "torch.linalg.vector_norm", "native_dropout": "torch.nn.functional.dropout"}


def user_name(aten_name):
    """The torch function a user writes for the aten op ``aten_name``: ``torch.layer_norm`` for
    ``native_layer_norm``, ``torch.special.bessel_j0`` for ``special_bessel_j0``; else ``aten.<name>``."""
    if aten_name in _TORCH_NAMES:
        return _TORCH_NAMES[aten_name]
    base = aten_name.removeprefix("native_").removeprefix("_").removesuffix("_forward")
    for prefix, namespace in (("special_", torch.special), ("linalg_", torch.linalg), ("fft_", torch.fft)):
        if base.startswith(prefix) and hasattr(namespace, base[len(prefix):]):
            return f"{namespace.__name__}.{base[len(prefix):]}"
    if hasattr(torch, base):
        return f"torch.{base}"
    if hasattr(torch.nn.functional, base):
        return f"torch.nn.functional.{base}"
    return f"aten.{aten_name}"


def writable():
    """What a user can write, in torch's terms, from the registry: its activations (the ops that
    capture the aten op of their own name, and the activations torch decomposes into them) and the
    arithmetic, matrix products, reductions and data movement that every op shares."""
    activations = [name for name, spec in ops.OPS.items() if spec.scaled and name in spec.captures]
    activations += sorted(name for name in DECOMPOSED if not name.endswith("_backward"))
    return ("inrarch computes " + ", ".join(activations) + " (torch and torch.nn.functional functions, or their "
            "torch.nn modules); +, - and * of tensors, / by constants, ** by integers 0..8; @, matmul and nn.Linear "
            "with constant matrices; sum and torch.linalg.vector_norm; comparisons and torch.where; indexing, "
            "reshapes, transposes, cat and stack")


def unsupported_message(name, source):
    why = ops.refusal(name)
    why = f" ({why})" if why is not None else ""
    return f"unsupported op {user_name(name)}{why} at {source}; {writable()}"


def _base_name(target):
    name = _op_name(target.overloadpacket if hasattr(target, "overloadpacket") else target)
    if name.endswith("_") and not name.endswith("__"):
        name = name[:-1]  # in-place variants translate like their pure forms
    return name


def first_unsupported(graph):
    """The first node of the aten ``graph`` that capture cannot translate, and its op's name."""
    known = set(supported())
    for fx_node in graph.nodes:
        if fx_node.op != "call_function":
            continue
        name = _base_name(fx_node.target)
        if name not in known and name != "getitem" and name not in _IGNORED:
            return fx_node, name
    return None, None


def translate(module, fn, sample, occurrence, parameters=()):
    """The IR graph of the aten graph ``module`` of ``fn`` traced on ``sample``, and whether ``fn`` returns
    one tensor; ``occurrence`` (or None) numbers the calls of each op, to find their source lines.

    ``parameters`` (``[(name, tensor)]``) are the trace's inputs after the sample: runtime weights,
    which the graph's :class:`~inrarch.capture.runtime.WeightProgram` computes the stored tensors from.
    """
    tr = _Translator(tuple(sample.shape))
    program = WeightProgram() if parameters else None
    placeholders = iter([None, *parameters])
    env = {}
    outputs = None
    for fx_node in module.graph.nodes:
        tr.source = f"aten.{_op_name(fx_node.target)}" if fx_node.op == "call_function" else ""
        if fx_node.op == "placeholder":
            parameter = next(placeholders)
            if parameter is None:
                env[fx_node] = _Sym(tr.input)
            else:
                name, value = parameter
                env[fx_node] = RuntimeTensor.parameter(program, name, value, seed=len(program.parameters))
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
            except (CompileError, NeedsPureGraph) as error:
                if isinstance(error, CompileError) and occurrence is not None:
                    where = source_line(fn, sample, fx_node.target, occurrence[fx_node])
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
        if isinstance(value, RuntimeTensor):
            raise CompileError("an output of the function depends on the parameters alone, not on the input; with "
                               "runtime weights every output must be computed from the input")
        if isinstance(value, torch.Tensor):
            # a constant output still streams once per sample: emit it behind the input
            value = tr.sym("gather", [_Sym(tr.input)], tuple(value.shape),
                           entries=tuple(float(v) for v in value.reshape(-1).tolist()))
        out_nodes.append(value.node)
    graph = ir.Graph(tr.input, out_nodes, tr.nodes, tr.weights.values())
    if program is not None:
        _store_runtime_tensors(graph, program, list(tr.weights.values()) + list(tr.vectors.values()))
    graph.topological().rename()
    return graph, single


def _store_runtime_tensors(graph, program, tensors):
    """Give ``graph`` the program of its runtime tensors, each tensor's ``runtime`` its output there."""
    runtime = [tensor for tensor in tensors if tensor.runtime is not None]
    graph.program = program.pruned([tensor.runtime for tensor in runtime])
    renamed = {id(tensor): ir.Weight(tensor.name, tensor.matrix, runtime=k, fingerprint=tensor.fingerprint)
               for k, tensor in enumerate(runtime)}
    for node in graph.nodes:
        for key, value in node.attrs.items():
            if id(value) in renamed:
                node.attrs[key] = renamed[id(value)]
    graph.weights = [renamed.get(id(weight), weight) for weight in graph.weights]

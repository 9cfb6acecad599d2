"""``derivatives(model, order)``: a model's value and its full derivative tensors up to ``order``.

Each k-th derivative is formed by differentiating every component of the (k-1)-th again, as
INR-Arch does. Mixed partials are symmetric, so only one multi-index per set of axes
(``i1 <= i2 <= ... <= ik``) is computed, with nested forward-mode ``torch.func.jvp`` along the
input axes; the full tensor is then assembled from those unique components. The compiler's
common-subexpression pass merges the lower-order work the nested products share.
"""

import itertools

import torch
from torch.func import jvp

from .capture import check_signature
from .errors import OptionError

__all__ = ["derivatives"]


def _directional(fn, axes):
    """``x -> d^k fn / dx_{axes[0]} ... dx_{axes[-1]}`` by nested jvp (batched: x is (batch, in))."""
    if not axes:
        return fn
    inner = _directional(fn, axes[:-1])
    axis = axes[-1]

    def derivative(x):
        tangent = torch.zeros_like(x)
        tangent[..., axis] = 1.0
        return jvp(inner, (x,), (tangent,))[1]

    return derivative


def derivatives(model, order):
    """Return ``fn(x) -> [value, D1, ..., D_order]`` for a model of ``x`` with shape ``(batch, in)``.

    ``D_k`` has shape ``(batch, out, in, ..., in)`` with ``k`` trailing ``in`` axes and holds
    ``d^k model(x)[b, o] / dx_{i1} ... dx_{ik}``. The function's ``output_meanings`` names them
    (``["value", "gradient", "Hessian", "3rd derivatives", ...]``), as the design's report does.

    Parameters
    ----------
    model : callable
        A ``torch.nn.Module`` or function mapping ``(batch, in)`` to ``(batch, out)`` (or ``(batch,)``),
        each row depending only on the same row of the input.
    order : int
        Highest derivative order, at least 1 (else :class:`~inrarch.CompileError`).
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise OptionError("order", f"must be an integer >= 1, not {order!r}")
    check_signature(model)

    def fn(x):
        if x.dim() != 2:
            raise ValueError(f"derivatives(): x must have shape (batch, in_features), not {tuple(x.shape)}")
        in_features = x.shape[1]
        value = model(x)
        squeeze = value.dim() == 1
        results = [value.unsqueeze(1) if squeeze else value]
        for k in range(1, order + 1):
            unique = {}
            for axes in itertools.combinations_with_replacement(range(in_features), k):
                part = _directional(model, axes)(x)
                unique[axes] = part.unsqueeze(1) if squeeze else part
            parts = [unique[tuple(sorted(axes))] for axes in itertools.product(range(in_features), repeat=k)]
            full = torch.stack(parts, dim=-1)
            results.append(full.reshape(*full.shape[:2], *([in_features] * k)))
        if squeeze:
            results = [r.squeeze(1) for r in results]
        return results

    fn.output_meanings = [_meaning(k) for k in range(order + 1)]
    return fn


def _meaning(k):
    """What the ``k``-th derivative output is called: value, gradient, Hessian, 3rd derivatives, ..."""
    named = {0: "value", 1: "gradient", 2: "Hessian"}
    if k in named:
        return named[k]
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix} derivatives"

"""Weight families: which networks a runtime-weight design accepts, and the check that a network does.

A design compiled with ``weights="runtime"`` (:func:`inrarch.compile`) serves every network of its
model's architecture whose parameters stay inside its *family*: each parameter and buffer has the
shape it had when the design was compiled and a magnitude of at most its *bound*.

The bounds come from the examples the user gives (``weight_examples``, the compiled model first)
and from ``weight_bounds``:

- a tensor named in ``weight_bounds`` takes that bound (it must hold every example's values);
- any other tensor takes :data:`DEFAULT_HEADROOM` times the largest magnitude it has in any example,
  or, where that is zero (a bias initialized to zero), times the largest magnitude of any tensor.

The default headroom, 4, holds random initializations of the example's architecture and networks
trained from them (training moves weights without changing their scale much), and it costs no
cycles and no DSP slices on the default workload (``python -m bench.runtime_weights``): every stored
tensor's number format holds the bound of the tensor, or, for a tensor derived from parameters (a
first layer's column times ``w0``), the bound that follows from theirs
(:meth:`inrarch.capture.WeightProgram.bounds`), so that no network of the family saturates a stored
weight, and the format search gives a matrix the wider DSP port where the narrower one loses too
much precision.

The values computed from the weights (every edge of the design) are calibrated on the examples
with the same ``margin`` as constant weights (2 by default). Training can grow them beyond that,
and networks trained alike on different signals differ: give trained networks as
``weight_examples`` (``tests/test_runtime_weights.py`` compiles for one and runs another) or a
larger ``margin``. A network of the family that drives a value beyond its format raises the
design's sticky overflow flag, which names the core, and never gives wrong outputs silently.

:meth:`WeightFamily.check` refuses a network outside the family with one line naming the tensor.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from cores.weights import WeightLayout

from .capture import parameters as model_parameters
from .capture.runtime import held_tensor
from .errors import InrarchError

__all__ = ["DEFAULT_HEADROOM", "WeightError", "TensorBound", "WeightFamily", "parameter_values", "check_values",
           "Segment", "segments", "image_words"]

#: Bound of a tensor not named in ``weight_bounds``: this times its largest magnitude in the examples.
DEFAULT_HEADROOM = 4.0


class WeightError(InrarchError):
    """A network that the design cannot load: another architecture, values outside its family, NaN or infinity."""


@dataclass(frozen=True)
class TensorBound:
    """One parameter or buffer of the family: its name (as in the model's ``state_dict``), shape and
    largest magnitude allowed; ``example`` is its largest magnitude in the examples."""

    name: str
    shape: tuple
    bound: float
    example: float

    def as_dict(self):
        return {"name": self.name, "shape": list(self.shape), "bound": self.bound, "example": self.example}


@dataclass(frozen=True)
class WeightFamily:
    """The networks a runtime-weight design accepts: every tensor within its :class:`TensorBound`."""

    tensors: tuple

    @property
    def names(self):
        return [tensor.name for tensor in self.tensors]

    @property
    def bounds(self):
        """``{name: bound}``."""
        return {tensor.name: tensor.bound for tensor in self.tensors}

    @classmethod
    def describe(cls, shapes, examples, bounds=None, headroom=DEFAULT_HEADROOM):
        """The family of the tensors ``shapes`` (``[(name, shape)]``) that holds every example.

        Parameters
        ----------
        shapes : list of (str, tuple)
        examples : list of dict
            Each example's float64 tensors by name (:func:`parameter_values`).
        bounds : dict, optional
            Bounds of some tensors by name; the others get ``headroom`` times their largest
            magnitude in the examples. A bound below an example's values is refused.
        headroom : float
        """
        bounds = dict(bounds or {})
        unknown = sorted(set(bounds) - {name for name, _ in shapes})
        if unknown:
            raise WeightError(f"weight_bounds names {unknown[0]!r}, which is not a parameter or buffer of the model "
                              f"(they are: {', '.join(name for name, _ in shapes)})")
        largest = {name: max(float(np.max(np.abs(example[name]))) if example[name].size else 0.0
                             for example in examples) for name, _ in shapes}
        overall = max(largest.values(), default=0.0)
        tensors = []
        for name, shape in shapes:
            if name in bounds:
                bound = float(bounds[name])
                if not bound >= largest[name]:
                    raise WeightError(f"weight_bounds[{name!r}] = {bound:g} is below the {largest[name]:g} an "
                                      "example reaches: the bound must hold every example")
            else:
                bound = headroom * (largest[name] or overall)
            tensors.append(TensorBound(name, tuple(shape), bound, largest[name]))
        return cls(tuple(tensors))

    def check(self, values):
        """Refuse ``values`` (:func:`parameter_values`) unless every tensor has its shape, finite values
        and a magnitude within its bound: :class:`WeightError`, one line naming the tensor."""
        check_values([(tensor.name, tensor.shape) for tensor in self.tensors], values)
        for tensor in self.tensors:
            value = values[tensor.name]
            largest = float(np.max(np.abs(value))) if value.size else 0.0
            if largest > tensor.bound:
                raise WeightError(f"tensor {tensor.name!r} reaches {largest:.6g} in magnitude, beyond the bound "
                                  f"{tensor.bound:.6g} of the family the design was compiled for (give "
                                  "weight_examples or weight_bounds that hold it, and compile again)")

    def as_dict(self):
        return {"tensors": [tensor.as_dict() for tensor in self.tensors]}

    @classmethod
    def from_dict(cls, data):
        return cls(tuple(TensorBound(t["name"], tuple(t["shape"]), float(t["bound"]), float(t["example"]))
                         for t in data["tensors"]))


def check_values(shapes, values):
    """Refuse ``values`` (:func:`parameter_values`) unless each tensor of ``shapes`` (``[(name, shape)]``)
    has its shape and only finite values: :class:`WeightError`, one line naming the tensor."""
    for name, shape in shapes:
        value = values[name]
        if tuple(value.shape) != tuple(shape):
            raise WeightError(f"tensor {name!r} has shape {tuple(value.shape)}, the design takes {tuple(shape)}")
        if not np.all(np.isfinite(value)):
            kind = "NaN" if np.any(np.isnan(value)) else "infinite"
            raise WeightError(f"tensor {name!r} holds {kind} values; the design takes only finite weights")


def parameter_values(weights, names):
    """The float64 numpy values of the tensors ``names`` of ``weights``: a ``torch.nn.Module`` of the
    compiled architecture (its parameters and buffers) or a mapping from name to tensor (a ``state_dict``).

    Raises :class:`WeightError` when a name is missing, when ``weights`` has floating-point tensors
    the design does not load (another architecture), or when a tensor is not real-valued.
    """
    if isinstance(weights, torch.nn.Module):
        held = {name: tensor for name, tensor in model_parameters(weights)}
        lookup = {name: held[name] if name in held else _held(weights, name) for name in names}
        extra = sorted(set(held) - set(names))
    elif isinstance(weights, Mapping):
        lookup = {name: weights.get(name) for name in names}
        extra = sorted(name for name, value in weights.items() if name not in names and _is_floating(value))
    else:
        raise WeightError(f"weights must be a torch.nn.Module or a mapping of tensors (a state_dict), not "
                          f"{type(weights).__name__}")
    missing = [name for name, value in lookup.items() if value is None]
    if missing:
        raise WeightError(f"the weights have no tensor {missing[0]!r}, which the design loads: they are not a "
                          "network of the compiled architecture")
    if extra:
        raise WeightError(f"the weights' tensor {extra[0]!r} is not one the design loads: they are not a network "
                          "of the compiled architecture")
    values = {}
    for name, value in lookup.items():
        if isinstance(value, torch.Tensor):
            if value.dtype.is_complex or not value.dtype.is_floating_point:
                raise WeightError(f"tensor {name!r} holds {value.dtype} values; the design takes real numbers")
            value = value.detach().cpu().to(torch.float64).numpy()
        values[name] = np.asarray(value, dtype=np.float64)
    return values


def _held(module, name):
    try:
        return held_tensor(module, name)
    except (AttributeError, KeyError):
        return None


def _is_floating(value):
    return isinstance(value, torch.Tensor) and value.dtype.is_floating_point or (
        isinstance(value, np.ndarray) and value.dtype.kind == "f")


@dataclass(frozen=True)
class Segment:
    """One core's part of a design's weight image: the core (its instance name), the stored tensor it
    holds (its output index in the graph's weight program) and how its memory holds it."""

    core: str
    tensor: int
    layout: WeightLayout

    def as_dict(self):
        return {"core": self.core, "tensor": self.tensor, "layout": self.layout.as_dict()}

    @classmethod
    def from_dict(cls, data):
        return cls(data["core"], data["tensor"], WeightLayout.from_dict(data["layout"]))


def segments(netlist):
    """The segments of a netlist's weight image, in the order of
    :meth:`inrarch.lower.Netlist.loaded` (the order its ``weights`` port fills them)."""
    found = []
    for instance in netlist.loaded():
        stored = instance.node.attrs.get("weight", instance.node.attrs.get("values"))
        found.append(Segment(instance.name, stored.runtime, instance.core.weight_layout))
    return found


def image_words(parts, stored):
    """The words of a weight image: each of the segments ``parts`` packed with its tensor of ``stored``
    (what the weight program computes for a network)."""
    words = []
    for part in parts:
        words += part.layout.pack(stored[part.tensor])
    return words

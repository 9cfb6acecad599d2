"""Reference INR models, deterministic from a seed: SIREN, plain MLPs with a choice of activation,
Fourier-feature networks and MLPs with a skip connection.

Every builder takes ``dtype`` (default float32, torch's default, as users' models are). The
parameters are drawn in float64 and then cast, so one seed gives the same model, up to rounding,
in every dtype.
"""

import contextlib
import math

import torch
from torch import nn

__all__ = ["Siren", "siren", "default_siren", "mlp", "Gaussian", "Finer", "FourierFeatures", "fourier_features", "SkipMLP",
           "skip_mlp", "ACTIVATIONS"]


class SineLayer(nn.Module):
    """``sin(w0 * (W x + b))`` with SIREN's initialization (Sitzmann et al., 2020)."""

    def __init__(self, in_features, out_features, w0, first, generator):
        super().__init__()
        self.w0 = w0
        self.linear = nn.Linear(in_features, out_features)
        bound = 1.0 / in_features if first else math.sqrt(6.0 / in_features) / w0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound, generator=generator)
            self.linear.bias.uniform_(-1.0 / math.sqrt(in_features), 1.0 / math.sqrt(in_features), generator=generator)

    def forward(self, x):
        return torch.sin(self.w0 * self.linear(x))


class Siren(nn.Module):
    """A SIREN: ``layers`` sine layers of width ``hidden``, then a linear output layer.

    The first layer uses ``first_w0`` (default: ``w0``), the others ``w0``.
    """

    def __init__(self, in_features, hidden, layers, out_features, w0, generator, first_w0=None):
        super().__init__()
        widths = [in_features] + [hidden] * layers
        first_w0 = w0 if first_w0 is None else first_w0
        self.body = nn.Sequential(*(SineLayer(a, b, first_w0 if i == 0 else w0, i == 0, generator)
                                    for i, (a, b) in enumerate(zip(widths, widths[1:]))))
        self.head = nn.Linear(hidden, out_features)
        bound = math.sqrt(6.0 / hidden) / w0
        with torch.no_grad():
            self.head.weight.uniform_(-bound, bound, generator=generator)
            self.head.bias.uniform_(-1.0 / math.sqrt(hidden), 1.0 / math.sqrt(hidden), generator=generator)

    def forward(self, x):
        return self.head(self.body(x))


def siren(in_features=2, hidden=256, layers=4, out_features=3, w0=30.0, seed=0, first_w0=None, dtype=torch.float32):
    """A deterministic SIREN ``in → hidden × layers → out`` with ``dtype`` parameters.

    ``first_w0`` sets a different frequency for the first layer (default: ``w0``).
    """
    generator = torch.Generator().manual_seed(seed)
    with _drawn_in_float64():
        model = Siren(in_features, hidden, layers, out_features, w0, generator, first_w0)
    return model.to(dtype).eval()


def default_siren(dtype=torch.float32):
    """The INR-Arch workload: SIREN 2→256→256→256→256→3 with w0 = 30."""
    return siren(in_features=2, hidden=256, layers=4, out_features=3, w0=30.0, seed=0, dtype=dtype)


@contextlib.contextmanager
def _drawn_in_float64():
    """Create parameters in float64, whatever torch's default dtype, so that a seed draws the same
    numbers for every dtype the model is then cast to."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(default)


class Gaussian(nn.Module):
    """The Gaussian activation ``exp(-x² / sigma²)`` (Ramasinghe & Lucey, 2022)."""

    def __init__(self, sigma=1.0):
        super().__init__()
        self.sigma = sigma

    def forward(self, x):
        return torch.exp(-(x * x) / (self.sigma * self.sigma))


class _Sine(nn.Module):
    def forward(self, x):
        return torch.sin(x)


class _Cosine(nn.Module):
    def forward(self, x):
        return torch.cos(x)


class Finer(nn.Module):
    """FINER's variable-periodic activation ``sin((|x| + 1) x)`` (Liu et al., 2024)."""

    def forward(self, x):
        return torch.sin((torch.abs(x) + 1) * x)


#: Activation names accepted by :func:`mlp`, :func:`fourier_features` and :func:`skip_mlp`.
ACTIVATIONS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "softplus": nn.Softplus, "sin": _Sine,
               "cos": _Cosine, "gaussian": Gaussian, "silu": nn.SiLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU,
               "finer": Finer, "identity": nn.Identity}


def _activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def _init_linear(module, generator):
    bound = 1.0 / math.sqrt(module.in_features)
    with torch.no_grad():
        module.weight.uniform_(-bound, bound, generator=generator)
        module.bias.uniform_(-bound, bound, generator=generator)


def mlp(in_features=2, hidden=16, layers=2, out_features=1, activation="tanh", seed=0, dtype=torch.float32):
    """A deterministic plain MLP (PINN style) with a chosen activation (a name in
    :data:`ACTIVATIONS`) after every hidden layer; the output layer is linear."""
    generator = torch.Generator().manual_seed(seed)
    widths = [in_features] + [hidden] * layers
    modules = []
    with _drawn_in_float64():
        for a, b in zip(widths, widths[1:]):
            modules += [nn.Linear(a, b), _activation(activation)]
        modules.append(nn.Linear(hidden, out_features))
        model = nn.Sequential(*modules)
        for module in model:
            if isinstance(module, nn.Linear):
                _init_linear(module, generator)
    return model.to(dtype).eval()


class FourierFeatures(nn.Module):
    """``[sin(2π B x), cos(2π B x)]`` with a fixed random ``B`` (Tancik et al., 2020), then an MLP."""

    def __init__(self, in_features, frequencies, scale, hidden, layers, out_features, activation, generator):
        super().__init__()
        self.register_buffer("B", torch.randn(frequencies, in_features, generator=generator) * scale)
        self.net = mlp(2 * frequencies, hidden, layers, out_features, activation,
                       seed=int(torch.randint(0, 2**31, (1,), generator=generator)), dtype=torch.get_default_dtype())

    def forward(self, x):
        projected = 2 * math.pi * x @ self.B.T
        return self.net(torch.cat([torch.sin(projected), torch.cos(projected)], dim=-1))


def fourier_features(in_features=2, frequencies=4, scale=1.0, hidden=16, layers=2, out_features=1, activation="relu",
                     seed=0, dtype=torch.float32):
    """A deterministic Fourier-feature network: ``frequencies`` random projections of scale ``scale``
    (the projection matrix is a buffer, ``B``)."""
    generator = torch.Generator().manual_seed(seed)
    with _drawn_in_float64():
        model = FourierFeatures(in_features, frequencies, scale, hidden, layers, out_features, activation, generator)
    return model.to(dtype).eval()


class SkipMLP(nn.Module):
    """An MLP whose layer ``skip_at`` reads ``cat([h, x])``: the input again (as in NeRF)."""

    def __init__(self, in_features, hidden, layers, out_features, activation, skip_at, generator):
        super().__init__()
        self.skip_at = skip_at
        self.layers = nn.ModuleList(nn.Linear((in_features if i == 0 else hidden) + (in_features if i == skip_at else 0),
                                              hidden) for i in range(layers))
        self.head = nn.Linear(hidden, out_features)
        self.activation = _activation(activation)
        for module in [*self.layers, self.head]:
            _init_linear(module, generator)

    def forward(self, x):
        h = x
        for i, layer in enumerate(self.layers):
            if i == self.skip_at:
                h = torch.cat([h, x], dim=-1)
            h = self.activation(layer(h))
        return self.head(h)


def skip_mlp(in_features=2, hidden=16, layers=3, out_features=1, activation="tanh", skip_at=1, seed=0,
             dtype=torch.float32):
    """A deterministic MLP with the input concatenated again into hidden layer ``skip_at``."""
    if not 1 <= skip_at < layers:
        raise ValueError(f"skip_at must be between 1 and layers - 1 = {layers - 1}, not {skip_at}")
    generator = torch.Generator().manual_seed(seed)
    with _drawn_in_float64():
        model = SkipMLP(in_features, hidden, layers, out_features, activation, skip_at, generator)
    return model.to(dtype).eval()

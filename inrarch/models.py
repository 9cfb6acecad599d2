"""Reference INR models: SIREN and plain MLPs, deterministic from a seed."""

import math

import torch
from torch import nn

__all__ = ["Siren", "siren", "default_siren", "mlp"]


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
    """A SIREN: ``layers`` sine layers of width ``hidden``, then a linear output layer."""

    def __init__(self, in_features, hidden, layers, out_features, w0, generator):
        super().__init__()
        widths = [in_features] + [hidden] * layers
        self.body = nn.Sequential(*(SineLayer(a, b, w0, i == 0, generator)
                                    for i, (a, b) in enumerate(zip(widths, widths[1:]))))
        self.head = nn.Linear(hidden, out_features)
        bound = math.sqrt(6.0 / hidden) / w0
        with torch.no_grad():
            self.head.weight.uniform_(-bound, bound, generator=generator)
            self.head.bias.uniform_(-1.0 / math.sqrt(hidden), 1.0 / math.sqrt(hidden), generator=generator)

    def forward(self, x):
        return self.head(self.body(x))


def siren(in_features=2, hidden=256, layers=4, out_features=3, w0=30.0, seed=0):
    """A deterministic SIREN ``in → hidden × layers → out``; float64 parameters."""
    generator = torch.Generator().manual_seed(seed)
    return Siren(in_features, hidden, layers, out_features, w0, generator).double().eval()


def default_siren():
    """The INR-Arch workload: SIREN 2→256→256→256→256→3 with w0 = 30."""
    return siren(in_features=2, hidden=256, layers=4, out_features=3, w0=30.0, seed=0)


_ACTIVATIONS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "softplus": nn.Softplus}


def mlp(in_features=2, hidden=16, layers=2, out_features=1, activation="tanh", seed=0):
    """A deterministic plain MLP (PINN style) with a chosen activation; float64 parameters."""
    generator = torch.Generator().manual_seed(seed)
    widths = [in_features] + [hidden] * layers
    modules = []
    for a, b in zip(widths, widths[1:]):
        modules += [nn.Linear(a, b), _ACTIVATIONS[activation]()]
    modules.append(nn.Linear(hidden, out_features))
    model = nn.Sequential(*modules).double()
    with torch.no_grad():
        for module in model:
            if isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.in_features)
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.uniform_(-bound, bound, generator=generator)
    return model.eval()

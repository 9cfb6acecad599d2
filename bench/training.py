"""Networks trained on real signals, for the runtime-weight tests and benches.

Two signals, each a function on ``[-1, 1]²``:

- :func:`image_patch`: an RGB patch of the photograph of Grace Hopper that matplotlib ships
  (``mpl-data/sample_data/grace_hopper.jpg``), values scaled to ``[-1, 1]``;
- :func:`poisson_solution`: ``u(x, y) = sin(πx) sin(πy)``, the solution of
  ``Δu = -2π² sin(πx) sin(πy)`` with ``u = 0`` on the boundary.

:func:`fit` trains a model on one with Adam, the way INR and PINN code does, and leaves the model
in eval mode.
"""

import math
import os

import matplotlib
import numpy as np
import torch
from matplotlib import image

__all__ = ["image_patch", "poisson_solution", "fit"]


def image_patch(row=200, column=250, size=32):
    """``(coordinates, rgb)``: the ``size × size`` patch at ``(row, column)`` of the Grace Hopper
    photograph, float32 tensors of shapes ``(size², 2)`` and ``(size², 3)``."""
    photo = image.imread(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))
    patch = photo[row:row + size, column:column + size].astype(np.float64) / 255.0 * 2.0 - 1.0
    axis = torch.linspace(-1.0, 1.0, size)
    coordinates = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2)
    return coordinates, torch.tensor(patch.reshape(-1, 3), dtype=torch.float32)


def poisson_solution(points=1024, seed=0):
    """``(coordinates, u)``: ``points`` uniform random points of ``[-1, 1]²`` and the solution
    ``sin(πx) sin(πy)`` there, float32 tensors of shapes ``(points, 2)`` and ``(points, 1)``."""
    generator = torch.Generator().manual_seed(seed)
    coordinates = torch.rand(points, 2, generator=generator) * 2.0 - 1.0
    return coordinates, torch.sin(math.pi * coordinates[:, :1]) * torch.sin(math.pi * coordinates[:, 1:])


def fit(model, coordinates, target, *, steps=300, lr=1e-4):
    """Train ``model`` for ``steps`` full-batch Adam steps at learning rate ``lr`` on the mean squared
    error to ``target``; returns the model, in eval mode, and the final loss."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = torch.mean((model(coordinates) - target) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), loss.item()

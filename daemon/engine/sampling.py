"""Flow-matching sampler pieces (spec §4): seeds -> noise, the time grid, guidance, ODE steps.

The network knows nothing about steps or guidance; the pipeline's loop calls these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

SOLVERS = ("euler", "heun")

Velocity = Callable[[Tensor, Tensor], Tensor]  # (x, t scalar tensor) -> guided velocity


def initial_noise(
    seeds: Sequence[int], frames: int, dim: int, generator_device: torch.device
) -> Tensor:
    """§4.2 standard normal noise (C, frames, dim) float32 on ``generator_device``.

    Each seed draws its own (1, frames, dim) tensor from a fresh generator, so a seed yields the
    same noise whatever other seeds share the batch. ``frames`` is the training window (360);
    the pipeline keeps the first ``length`` rows.
    """
    draws = []
    for seed in seeds:
        gen = torch.Generator(device=generator_device).manual_seed(int(seed))
        draws.append(
            torch.randn(
                (1, frames, dim), generator=gen, device=generator_device, dtype=torch.float32
            )
        )
    return torch.cat(draws, dim=0)


def time_grid(steps: int, device: torch.device) -> Tensor:
    """§4.3 t = linspace(0, 1, steps + 1) float32: t = 0 is noise, t = 1 is data."""
    return torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float32, device=device)


def guide(v_uncond: Tensor, v_cond: Tensor, scale: float | Tensor) -> Tensor:
    """§4.4 v = v_u + s·(v_c − v_u)."""
    return v_uncond + scale * (v_cond - v_uncond)


def ode_step(velocity: Velocity, x: Tensor, t0: Tensor, t1: Tensor, solver: str) -> Tensor:
    """One step of the solver from t0 to t1 (x float32).

    ``euler`` is the official explicit Euler (§4.3); ``heun`` (2nd order, two evaluations per
    step) is our optional trade-off for fewer steps and never the default.
    """
    dt = t1 - t0
    v0 = velocity(x, t0).float()
    # §4.3 y_{n+1} = y_n + (t_{n+1} − t_n)·f(t_n, y_n)
    if solver == "euler":
        return x + dt * v0
    if solver == "heun":
        v1 = velocity(x + dt * v0, t1).float()
        return x + dt * 0.5 * (v0 + v1)
    raise ValueError(f"solver {solver!r} is not one of {SOLVERS}")

"""Flow-matching sampler pieces (spec §4): seeds -> noise, the time grid, guidance, and the
built-in ODE solvers.

The network knows nothing about steps or guidance. A solver is a ``Stepper``: the flow times at
which it evaluates the guided velocity, and the update of one job's latent after each evaluation.
The pipeline evaluates every job of a batch in one forward (they share the grid) and hands each
job's stepper its own rows, so a cancelled job leaves the batch together with its solver state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from torch import Tensor


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


class Stepper(Protocol):
    """One job's ODE solver from noise (t = 0) to data (t = 1), one velocity at a time."""

    #: (E,) float32 flow times of the E velocity evaluations, in order, on the model's device.
    times: Tensor
    #: Velocity evaluations per sampler step (progress is reported per step).
    per_step: int

    def update(self, x: Tensor, v: Tensor) -> Tensor:
        """The latent after evaluation k (the k-th call): x (C, F, 201) float32 is the point
        where the velocity v = dx/dt (C, F, 201) float32 was evaluated at ``times[k]``."""
        ...


class EulerStepper:
    """§4.3 the official sampler: fixed-grid explicit Euler, one evaluation per step."""

    per_step = 1

    def __init__(self, steps: int, device: torch.device) -> None:
        self._grid = time_grid(steps, device)
        self.times = self._grid[:-1]
        self._n = 0

    def update(self, x: Tensor, v: Tensor) -> Tensor:
        t0, t1 = self._grid[self._n], self._grid[self._n + 1]
        self._n += 1
        # §4.3 y_{n+1} = y_n + (t_{n+1} − t_n)·f(t_n, y_n)
        return x + (t1 - t0) * v


class HeunStepper:
    """Heun's method (explicit trapezoid, 2nd order) on the same grid, two evaluations per step:
    our optional trade-off for fewer steps, never the default."""

    per_step = 2

    def __init__(self, steps: int, device: torch.device) -> None:
        self._grid = time_grid(steps, device)
        # t_0, t_1 | t_1, t_2 | ...: the predictor's start, then its end point
        self.times = torch.stack([self._grid[:-1], self._grid[1:]], dim=1).flatten()
        self._k = 0
        self._start: tuple[Tensor, Tensor] | None = None  # (y_n, f(t_n, y_n))

    def update(self, x: Tensor, v: Tensor) -> Tensor:
        n, corrector = divmod(self._k, 2)
        self._k += 1
        dt = self._grid[n + 1] - self._grid[n]
        if not corrector:
            self._start = (x, v)
            return x + dt * v  # predictor: an Euler step to t_{n+1}
        assert self._start is not None
        y, v0 = self._start
        self._start = None
        # y_{n+1} = y_n + (t_{n+1} − t_n)·(f(t_n, y_n) + f(t_{n+1}, ỹ_{n+1})) / 2
        return y + dt * 0.5 * (v0 + v)


def integrate(stepper: Stepper, velocity: Callable[[Tensor, Tensor], Tensor], x: Tensor) -> Tensor:
    """Run ``stepper`` from the noise x to data, with ``velocity(x, t)`` -> dx/dt (one job)."""
    for t in stepper.times:
        x = stepper.update(x, velocity(x, t))
    return x


BUILTIN_STEPPERS: dict[str, type[EulerStepper] | type[HeunStepper]] = {
    "euler": EulerStepper,
    "heun": HeunStepper,
}

"""Seeds -> noise determinism, the time grid, guidance and the ODE steps (spec §4)."""

from __future__ import annotations

import pytest
import torch

from daemon.engine.sampling import (
    BUILTIN_STEPPERS,
    EulerStepper,
    HeunStepper,
    Stepper,
    guide,
    initial_noise,
    time_grid,
)

CPU = torch.device("cpu")


def test_a_seed_gives_the_same_noise_whatever_else_is_in_the_batch() -> None:
    alone = initial_noise([7], 360, 201, CPU)
    batch = initial_noise([3, 7, 11], 360, 201, CPU)
    assert alone.shape == (1, 360, 201) and alone.dtype == torch.float32
    assert torch.equal(batch[1], alone[0])
    assert torch.equal(initial_noise([7], 360, 201, CPU), alone)  # repeatable
    assert not torch.equal(batch[0], batch[1])


def test_noise_is_pytorchs_cpu_generator_stream_for_a_1_360_201_draw() -> None:
    # the official Standard config draws (1, 360, 201) from a CPU generator seeded with the seed
    gen = torch.Generator(device="cpu")
    gen.manual_seed(42)
    expected = torch.randn((1, 360, 201), generator=gen, dtype=torch.float32)
    assert torch.equal(initial_noise([42], 360, 201, CPU), expected)
    # the first frames of a shorter clip are the first rows of that draw, not a new draw
    assert not torch.equal(
        initial_noise([42], 60, 201, CPU)[0], initial_noise([42], 360, 201, CPU)[0, :60]
    )


def test_time_grid_runs_from_noise_to_data() -> None:
    grid = time_grid(50, CPU)
    assert grid.shape == (51,) and grid[0] == 0 and grid[-1] == 1
    assert torch.allclose(grid[1] - grid[0], torch.tensor(0.02))


def test_guidance_formula() -> None:
    v_u, v_c = torch.tensor([1.0]), torch.tensor([3.0])
    assert guide(v_u, v_c, 5.0).item() == 11.0
    assert guide(v_u, v_c, 1.0).item() == 3.0


def _integrate(stepper: Stepper, velocity, x: torch.Tensor) -> torch.Tensor:
    for t in stepper.times:
        x = stepper.update(x, velocity(x, t))
    return x


@pytest.mark.parametrize(("solver", "steps", "tol"), [("euler", 200, 2e-2), ("heun", 20, 2e-3)])
def test_builtin_solvers_integrate_a_known_ode(solver: str, steps: int, tol: float) -> None:
    # dx/dt = x  ->  x(1) = e · x(0)
    x = _integrate(BUILTIN_STEPPERS[solver](steps, CPU), lambda y, t: y, torch.tensor([1.0, -2.0]))
    assert torch.allclose(x, torch.tensor([1.0, -2.0]) * torch.e, rtol=tol)


def test_euler_evaluates_once_per_step_at_the_start_of_the_step() -> None:
    stepper = EulerStepper(4, CPU)
    assert stepper.times.tolist() == [0.0, 0.25, 0.5, 0.75] and stepper.per_step == 1
    assert torch.equal(stepper.update(torch.zeros(3), torch.full((3,), 2.0)), torch.full((3,), 0.5))


def test_heun_evaluates_at_both_ends_of_each_step_and_averages() -> None:
    stepper = HeunStepper(2, CPU)
    assert stepper.times.tolist() == [0.0, 0.5, 0.5, 1.0] and stepper.per_step == 2
    seen: list[tuple[float, float]] = []

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # dx/dt = 2t
        seen.append((float(x), float(t)))
        return 2 * t.expand_as(x)

    x = _integrate(stepper, velocity, torch.zeros(()))
    # the predictor goes x + dt·v(t_n); the corrector restarts from x_n with the mean slope
    assert seen == [(0.0, 0.0), (0.0, 0.5), (0.25, 0.5), (0.75, 1.0)]
    assert float(x) == 1.0  # exact for a linear velocity in t: ∫ 2t dt = 1

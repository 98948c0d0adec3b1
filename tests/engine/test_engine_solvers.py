"""The ``solver`` option: diffusers' flow-matching schedulers on our grid (engine/solvers.py).

Real diffusers schedulers throughout. Convergence is measured on an analytic flow whose exact
solution is known (bench.GaussianFlow): the untrained tiny model's velocity is not smooth in t
(its time embedding has frequencies up to 1000 rad per unit of t), so no solver converges on it
at practical step counts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from daemon.engine import solvers
from daemon.engine.bench import GaussianFlow
from daemon.engine.factory import create_engine
from daemon.engine.pipeline import Generated, MotionPipeline
from daemon.engine.sampling import integrate, time_grid
from daemon.engine.solvers import DIFFUSERS_SOLVERS, SOLVERS, make_stepper
from daemon.engine_api import JobOutput, JobSpec
from shared_protocol import InvalidArgument, JobCancelled

CPU = torch.device("cpu")
MULTISTEP = ("unipc", "dpm++2m")


def _job(job_id: str, frames: int, seeds: tuple[int, ...], steps: int) -> JobSpec:
    return JobSpec(job_id, "a person walks forward", frames, seeds, 5.0, steps, "tiny")


def _generate(pipeline: MotionPipeline, jobs: list[JobSpec], stop=lambda job: False):
    return pipeline.generate(jobs, lambda *a: None, stop)


def _solve(name: str, steps: int, flow: GaussianFlow, noise: torch.Tensor) -> torch.Tensor:
    return integrate(make_stepper(name, steps, CPU), flow.velocity, noise)


def _flow() -> tuple[GaussianFlow, torch.Tensor]:
    flow = GaussianFlow.random((2, 40, 201))
    return flow, torch.randn((2, 40, 201), generator=torch.Generator().manual_seed(1))


def test_diffusers_euler_reproduces_our_euler_on_the_tiny_model(
    tiny_pipeline: MotionPipeline,
) -> None:
    job = _job("a", 75, (3, 4, 5), steps=12)
    (ours,) = _generate(tiny_pipeline, [job])
    (theirs,) = _generate(tiny_pipeline.with_solver("flowmatch-euler"), [job])
    assert isinstance(ours, Generated) and isinstance(theirs, Generated)
    # dt = σ_n − σ_{n+1} with σ = 1 − t rounded to float32: equal up to float rounding
    torch.testing.assert_close(theirs.latent, ours.latent, atol=2e-6, rtol=0)
    assert abs(theirs.motion.joint_positions - ours.motion.joint_positions).max() < 1e-6
    (other,) = _generate(tiny_pipeline.with_solver("unipc"), [job])
    assert isinstance(other, Generated)
    assert (other.latent - ours.latent).abs().max() > 1e-3  # a real solver change shows


def test_diffusers_euler_reproduces_our_euler_on_the_analytic_flow() -> None:
    flow, noise = _flow()
    ours, theirs = (_solve(name, 50, flow, noise) for name in ("euler", "flowmatch-euler"))
    torch.testing.assert_close(theirs, ours, atol=2e-6, rtol=0)


@pytest.mark.parametrize("name", [*MULTISTEP, "heun"])
def test_higher_order_solvers_converge_faster_than_euler_to_the_exact_flow(name: str) -> None:
    flow, noise = _flow()
    exact = flow.solution(noise)

    def errors(solver: str) -> list[float]:
        return [float((_solve(solver, n, flow, noise) - exact).abs().max()) for n in (10, 20, 40)]

    euler, higher = errors("euler"), errors(name)
    # Euler is first order: 4x the steps, a quarter of the error. These fall at least 8x
    # (an average order of 1.5 or more) and stay well below Euler at every step count.
    assert 3.5 < euler[0] / euler[2] < 4.5
    assert higher[0] > higher[1] > higher[2] and higher[0] / higher[2] > 8, higher
    assert all(h < e / 2.5 for h, e in zip(higher, euler, strict=True))


@pytest.mark.parametrize("name", MULTISTEP)
def test_multistep_at_half_the_evaluations_is_closer_to_the_exact_flow_than_euler_50(
    name: str,
) -> None:
    flow, noise = _flow()
    exact = flow.solution(noise)
    euler_50 = float((_solve("euler", 50, flow, noise) - exact).abs().max())
    assert float((_solve(name, 25, flow, noise) - exact).abs().max()) < euler_50 / 2


@pytest.mark.parametrize("name", list(DIFFUSERS_SOLVERS))
@pytest.mark.parametrize("steps", [1, 2, 7, 50])
def test_every_diffusers_solver_evaluates_the_network_on_the_official_grid(
    name: str, steps: int
) -> None:
    stepper = make_stepper(name, steps, CPU)
    assert torch.equal(stepper.times, time_grid(steps, CPU)[:-1]) and stepper.per_step == 1
    flow, noise = _flow()
    assert torch.isfinite(_solve(name, steps, flow, noise)).all()


@pytest.mark.parametrize("name", list(DIFFUSERS_SOLVERS))
def test_jobs_share_the_schedulers_tables_but_never_write_them(name: str) -> None:
    flow, noise = _flow()
    _solve(name, 5, flow, noise)
    template = solvers._template(name)
    tables = {k: v.clone() for k, v in vars(template).items() if isinstance(v, torch.Tensor)}
    first = _solve(name, 9, flow, noise)
    assert all(torch.equal(vars(template)[k], v) for k, v in tables.items())
    torch.testing.assert_close(_solve(name, 9, flow, noise), first, atol=0, rtol=0)


def test_a_scheduler_off_our_grid_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    scheduler, options, takes_sigmas = DIFFUSERS_SOLVERS["dpm++2m"]
    shifted = {**options, "flow_shift": 3.0}  # a timestep shift moves every σ_k
    monkeypatch.setitem(DIFFUSERS_SOLVERS, "dpm++2m", (scheduler, shifted, takes_sigmas))
    solvers._template.cache_clear()
    try:
        with pytest.raises(InvalidArgument, match="did not put 10 steps on the grid"):
            make_stepper("dpm++2m", 10, CPU)
    finally:
        solvers._template.cache_clear()


@pytest.mark.parametrize("name", ["heun", *MULTISTEP])
def test_solver_state_is_per_job_through_batching_and_cancellation(
    tiny_pipeline: MotionPipeline, name: str
) -> None:
    pipeline = tiny_pipeline.with_solver(name)
    sampled: dict[str, list[int]] = {"a": [], "b": []}

    def progress(job: str, stage: str, step: int, total: int) -> None:
        if stage == "sampling":
            sampled[job].append(step)

    jobs = [_job("a", 40, (1, 2), steps=6), _job("b", 90, (3,), steps=6)]
    together = pipeline.generate(jobs, progress, lambda job: job == "b" and len(sampled["b"]) == 3)
    assert isinstance(together[1], JobCancelled)
    assert sampled == {"a": [1, 2, 3, 4, 5, 6], "b": [1, 2, 3]}  # per step, whatever the solver
    (alone,) = _generate(pipeline, [jobs[0]])
    assert isinstance(together[0], Generated) and isinstance(alone, Generated)
    torch.testing.assert_close(together[0].latent, alone.latent, atol=1e-5, rtol=0)
    # the fast mode's shortcuts stay exact under every solver
    reference = pipeline.generate_reference(jobs[0])
    torch.testing.assert_close(alone.latent, reference.latent, atol=1e-4, rtol=0)


@pytest.mark.parametrize("options", [{"solver": "rk4"}, {"solver": 3}])
def test_unknown_solvers_are_rejected_with_the_allowed_list(options: dict) -> None:
    with pytest.raises(InvalidArgument) as info:
        create_engine(options, "cpu")
    assert info.value.field == "engine.solver"
    assert (
        info.value.allowed == ", ".join(SOLVERS) == "euler, heun, flowmatch-euler, unipc, dpm++2m"
    )
    with pytest.raises(InvalidArgument, match="is not a solver"):
        make_stepper(str(options["solver"]), 10, CPU)


def test_without_diffusers_its_solvers_are_refused_and_the_engine_still_works(
    tiny_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "diffusers", None)  # any import of it now fails
    with pytest.raises(InvalidArgument, match="needs the optional diffusers package") as info:
        create_engine({"tiny_dir": str(tiny_root), "solver": "unipc"}, "cpu")
    assert info.value.field == "engine.solver" and info.value.allowed == "euler, heun"
    with pytest.raises(InvalidArgument, match="pip install"):
        make_stepper("flowmatch-euler", 10, CPU)
    for solver in ("euler", "heun"):
        engine = create_engine({"tiny_dir": str(tiny_root), "solver": solver}, "cpu")
        job = _job("j", 30, (1,), steps=3)
        (out,) = engine.run_batch([job], lambda *a: None, lambda j: False)
        assert isinstance(out, JobOutput)

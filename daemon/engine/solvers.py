"""Every ``solver`` option: the built-in Euler (official) and Heun, and optional flow-matching
schedulers from ``diffusers`` (the ``solvers`` extra), none of them the default.

Mapping between the two conventions
-----------------------------------
HY-Motion (spec §4.3): t runs from 0 (noise) to 1 (data) on the grid t_k = k/N, and the network
predicts v = dx/dt at (x, t); its time embedding takes t. On the linear path
x_t = (1 − t)·ε + t·d, v = d − ε.

diffusers' flow-matching schedulers: σ runs from 1 (noise) to 0 (data), x_σ = σ·ε + (1 − σ)·d,
and a ``flow_prediction`` model outputs dx/dσ = ε − d.

Hence σ = 1 − t, the same latent x at both, and model_output = −v. The network is always
evaluated at our grid times t_k (the official time embedding), and each scheduler is put on the
grid σ_k = 1 − t_k, checked when it is built (``GRID_TOLERANCE``):

- ``flowmatch-euler`` and ``unipc`` take the sigmas (``set_timesteps(sigmas=...)``). UniPC moves
  σ_0 = 1 to 1 − 1e-6 so that its log(1 − σ) stays finite.
- ``dpm++2m`` takes no sigmas. Its flow grid is σ_k = (1 − 1/num_train_timesteps)·(1 − k/N), so
  num_train_timesteps = 10⁶ puts it within 1e-6 of ours (the same guard as UniPC's).

The schedulers' own ``timesteps`` (σ·num_train_timesteps) only index their steps; they never
reach our network. No timestep shift (``shift`` = ``flow_shift`` = 1): HY-Motion is sampled on
the uniform grid, and a shift would move every evaluation off it with no measured gain.
"""

from __future__ import annotations

import copy
import functools
import importlib
from typing import Any

import numpy as np
import torch
from torch import Tensor

from shared_protocol import InvalidArgument

from .sampling import BUILTIN_STEPPERS, Stepper, time_grid

_FLOW = {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 1.0}
#: name -> (diffusers scheduler class, constructor arguments, whether set_timesteps takes sigmas)
DIFFUSERS_SOLVERS: dict[str, tuple[str, dict[str, Any], bool]] = {
    # 1st order: reproduces ``euler`` through diffusers (a cross-check of the mapping)
    "flowmatch-euler": ("FlowMatchEulerDiscreteScheduler", {"shift": 1.0}, True),
    # UniPC: bh2 predictor-corrector, 2nd order, on the data prediction x − σ·model_output
    "unipc": ("UniPCMultistepScheduler", {**_FLOW, "solver_order": 2, "solver_type": "bh2"}, True),
    # DPM-Solver++(2M): 2nd-order multistep on the data prediction
    "dpm++2m": (
        "DPMSolverMultistepScheduler",
        {**_FLOW, "solver_order": 2, "algorithm_type": "dpmsolver++", "num_train_timesteps": 10**6},
        False,
    ),
}
SOLVERS = (*BUILTIN_STEPPERS, *DIFFUSERS_SOLVERS)
#: Largest allowed |σ_k − (1 − t_k)|: float32 rounding plus the 1e-6 guard at σ_0.
GRID_TOLERANCE = 2e-6


def check_solver(name: str) -> None:
    """InvalidArgument (field ``engine.solver``) for an unknown name, or for a diffusers solver
    when diffusers cannot be imported; built-in solvers never need diffusers."""
    if name in BUILTIN_STEPPERS:
        return
    if name not in DIFFUSERS_SOLVERS:
        raise InvalidArgument(
            "engine.solver", f"{name!r} is not a solver", allowed=", ".join(SOLVERS)
        )
    _scheduler_class(name)


def _scheduler_class(name: str) -> Any:
    class_name = DIFFUSERS_SOLVERS[name][0]
    try:
        return getattr(importlib.import_module("diffusers"), class_name)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgument(
            "engine.solver",
            f"solver {name!r} needs the optional diffusers package (its {class_name}), which "
            f"cannot be imported ({type(exc).__name__}: {exc}); install it with "
            "pip install 'hy-motion-blender[solvers]', or use a built-in solver",
            allowed=", ".join(BUILTIN_STEPPERS),
        ) from exc


@functools.cache
def _template(name: str) -> Any:
    """One constructed scheduler per solver; jobs get copies that share its tables."""
    return _scheduler_class(name)(**DIFFUSERS_SOLVERS[name][1])


def _scheduler(name: str, steps: int) -> Any:
    """A fresh scheduler ``name`` on our grid of ``steps`` steps, checked (module docstring)."""
    template = _template(name)
    # its own step state (history, step index); the construction-time tensors (DPM-Solver's are
    # 24 MB) are only read by set_timesteps and step, so the copies share them
    tables = {id(v): v for v in vars(template).values() if isinstance(v, Tensor)}
    scheduler = copy.deepcopy(template, tables)
    t = time_grid(steps, torch.device("cpu"))
    if DIFFUSERS_SOLVERS[name][2]:
        scheduler.set_timesteps(steps, sigmas=(1.0 - t[:-1]).numpy())  # σ_k = 1 − t_k
    else:
        scheduler.set_timesteps(steps)
    scheduler.set_begin_index(0)  # step k is the k-th call, whatever its timestep label
    sigmas = scheduler.sigmas.double()
    expected = 1.0 - t.double()
    if sigmas.shape != expected.shape or float((sigmas - expected).abs().max()) > GRID_TOLERANCE:
        raise InvalidArgument(
            "engine.solver",
            f"diffusers {type(scheduler).__name__} did not put {steps} steps on the grid "
            f"σ_k = 1 − k/N (got {np.array2string(scheduler.sigmas.numpy(), precision=6)}); "
            "this diffusers version is not supported for this solver",
            allowed=", ".join(BUILTIN_STEPPERS),
        )
    return scheduler


class DiffusersStepper:
    """A diffusers flow-matching scheduler on our grid (mapping in the module docstring)."""

    per_step = 1

    def __init__(self, scheduler: Any, times: Tensor) -> None:
        self._scheduler = scheduler
        self.times = times  # (N,) t_k on the device: the network's times
        self._k = 0

    def update(self, x: Tensor, v: Tensor) -> Tensor:
        label = self._scheduler.timesteps[self._k]
        self._k += 1
        # σ = 1 − t: the scheduler integrates dx/dσ = −dx/dt
        return self._scheduler.step(-v, label, x, return_dict=False)[0]


def make_stepper(name: str, steps: int, device: torch.device) -> Stepper:
    """A fresh solver state for one job of ``steps`` steps; InvalidArgument as ``check_solver``."""
    if name in BUILTIN_STEPPERS:
        return BUILTIN_STEPPERS[name](steps, device)
    check_solver(name)
    return DiffusersStepper(_scheduler(name, steps), time_grid(steps, device)[:-1])

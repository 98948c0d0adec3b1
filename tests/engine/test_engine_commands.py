"""``check``, ``convert`` and ``bench`` through argparse, as ``python -m daemon`` runs them."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.engine.commands import register
from daemon.engine.tiny import MODEL_DIR
from shared_protocol import InvalidArgument

ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_check_the_tiny_model(tiny_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["check", "--tiny-dir", str(tiny_root)]) == 0
    out = capsys.readouterr().out
    assert "UNTRAINED" in out and "approximated from joints" in out and out.endswith("OK\n")


def test_check_a_model_directory_prints_the_plan_and_the_encoder_problem(
    tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = shutil.copytree(tiny_root / MODEL_DIR, tmp_path / "HY-Motion-x")
    missing_clip = str(tmp_path / "no-clip")
    code = _run(["check", "--model-dir", str(model), "--qwen", str(tiny_root / "qwen3"),
                 "--clip", missing_clip])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "D=64, 3 layers (1 double + 2 single)" in out
    assert "latest.ckpt: " in out and "names and shapes OK" in out
    assert "memory plan on cpu" in out and "within 12 GiB" in out
    assert "system prompt: official string, sha256 OK" in out
    assert "FAILED" in out and f"{missing_clip}: CLIP directory not found" in out


def test_check_reports_a_bad_weights_file(tiny_root: Path, tmp_path: Path, capsys) -> None:
    model = shutil.copytree(tiny_root / MODEL_DIR, tmp_path / "bad")
    (model / "latest.ckpt").write_bytes(b"\0" * 100)
    assert _run(["check", "--model-dir", f"std={model}"]) == 1
    assert "latest.ckpt: unreadable or truncated" in capsys.readouterr().out


def test_convert(tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = shutil.copytree(tiny_root / MODEL_DIR, tmp_path / "m")
    assert _run(["convert", str(model)]) == 0
    assert (model / "model.safetensors").is_file()
    assert "checked against config.yml" in capsys.readouterr().out


def test_bench_quick_on_the_tiny_model(tiny_root: Path, capsys) -> None:
    assert _run(["bench", "--quick", "--tiny-dir", str(tiny_root)]) == 0
    out = capsys.readouterr().out
    assert "model tiny" in out and "batching: 3 jobs" in out
    rows = [line for line in out.splitlines() if re.match(r"\s+\d+\s+\d+\.\ds ", line)]
    assert len(rows) == 4  # 1 and 4 candidates x 2 and 5 s
    assert all(float(row.split()[-1]) < 1e-4 for row in rows)  # joints within 0.1 mm of reference


def test_bench_solvers_on_the_tiny_model(tiny_root: Path, capsys) -> None:
    argv = ["bench", "--solvers", "euler,flowmatch-euler,unipc", "--solver-steps", "3,6",
            "--steps", "6", "--tiny-dir", str(tiny_root)]  # fmt: skip
    assert _run(argv) == 0
    out = capsys.readouterr().out
    assert "against Euler at 6 steps" in out and "exact solution known" in out
    rows = {tuple(line.split()[:2]): line.split() for line in out.splitlines()
            if re.match(r"\s+[a-z+-]+\s+\d+\s+\d+\s", line)}  # fmt: skip
    assert set(rows) == {(s, n) for s in ("euler", "flowmatch-euler", "unipc") for n in "36"}
    assert float(rows["euler", "6"][-1]) == 0.0  # the baseline against itself
    assert float(rows["flowmatch-euler", "6"][-1]) < 1e-5  # diffusers' Euler reproduces it
    assert float(rows["unipc", "6"][-1]) > 1e-5


def test_bench_refuses_an_unknown_solver(tiny_root: Path) -> None:
    with pytest.raises(InvalidArgument, match="'rk4' is not a solver"):
        _run(["bench", "--solvers", "rk4", "--tiny-dir", str(tiny_root)])


@pytest.mark.slow
def test_bench_lite_size_random_weights(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["bench", "--model", "lite-random", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "lite-random" in out and "speedup" in out


@pytest.mark.slow
def test_python_m_daemon_check(tiny_root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "check", "--tiny-dir", str(tiny_root)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout

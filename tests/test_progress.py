"""The progress display: plain lines when stderr is not a terminal, the best grid point's return."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np

from jaxppo.cli.loop import Progress, return_text


def test_progress_off_a_terminal_prints_a_plain_line_about_every_tenth_of_the_run():
    stream = io.StringIO()  # not a terminal
    progress = Progress(total_steps=1000, agents=2, enabled=True, stream=stream)
    for steps in range(20, 1001, 20):  # 50 chunks
        progress.update(steps, np.full((1, 2), 10.0))
    progress.close()
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 10, lines
    assert lines[0].startswith("training:  10% (200 of 2,000 steps") and lines[-1].startswith("training: 100%")
    assert all("return mean 10.0" in line for line in lines), lines


def test_a_resumed_progress_counts_from_where_it_resumed():
    stream = io.StringIO()
    progress = Progress(total_steps=1000, agents=1, enabled=True, start_steps=550, stream=stream)
    for steps in range(600, 1001, 50):
        progress.update(steps, np.full((1, 1), np.nan))  # no episode finished: no return field
    assert [line.split("%")[0] for line in stream.getvalue().splitlines()] == [f"training: {p:3d}" for p in
                                                                               (60, 70, 80, 90, 100)]  # fmt: skip
    assert "return" not in stream.getvalue()


def test_a_grid_shows_its_best_grid_point_not_a_mean_across_points():
    returns = np.array([[10.0, 12.0], [400.0, 500.0], [np.nan, np.nan]])
    assert return_text(returns) == "best grid point 1: return mean 450.0 min 400.0"
    assert return_text(returns[:1]) == "return mean 11.0 min 10.0"
    assert return_text(np.full((2, 3), np.nan)) == ""


def test_the_command_line_writes_no_carriage_returns_into_a_pipe(tmp_path):
    flags = ["--env", "CartPole-v1", "--total-timesteps", "10240", "--num-envs", "4", "--num-steps", "128"]
    proc = subprocess.run([sys.executable, "-m", "jaxppo.run", *flags, "--seeds", "2", "--out", "run"], cwd=tmp_path,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\r" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("training:")]
    assert 1 <= len(lines) <= 10 and lines[-1].startswith("training: 100%"), proc.stderr

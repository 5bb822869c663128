"""End-to-end tests of the command line: ``python -m jaxppo.run`` / ``jaxppo.evaluate`` / ``jaxppo.plot``.

Commands run in a subprocess (``JAX_PLATFORMS=cpu``, cwd a temporary directory), as a user
starts them. Each process pays a few seconds of imports and JAX compilation, so the real training
runs are shared by module-scoped fixtures and independent processes run concurrently; most of the
commands that must fail before training call the program's ``main`` in the test process instead
(``in_this_process``), and a few of each kind still run as processes.
"""

from __future__ import annotations

import csv
import importlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cli_harness import (
    ENV,
    QUICK_TIMEOUT,
    RUN_TIMEOUT,
    TINY,
    WORKERS,
    assert_ok,
    assert_one_line_error,
    assert_png,
    checkpoint_steps,
    cli,
    column,
    describe,
    in_parallel,
    in_this_process,
    interrupt_after_first_checkpoint,
    popen,
    read_rows,
    snapshot,
)

pytestmark = pytest.mark.timeout(300)

ITERATIONS = 4
BATCH = 4 * 128
GRID_LRS = (1e-3, 3e-3)
HPARAM_DEFAULTS = {"gamma": 0.99, "gae_lambda": 0.95, "clip_coef": 0.2, "ent_coef": 0.01, "vf_coef": 0.5}
HPARAM_DEFAULTS["max_grad_norm"] = 0.5
HP_COLUMNS = [f"hp_{n}" for n in ("learning_rate", *HPARAM_DEFAULTS)]
KEY_COLUMNS = ["grid_point", *HP_COLUMNS, "seed", "iteration", "env_steps"]
METRIC_COLUMNS = [
    "episode_return", "episode_return_last100", "policy_loss", "value_loss", "entropy", "approx_kl",
    "old_approx_kl", "clipfrac", "explained_variance", "grad_norm", "learning_rate",
]  # fmt: skip

# ------------------------------------------------------------------ the shared runs
TOML_CONFIG = """\
env = "CartPole-v1"
seeds = 3
learning_rate = 1e-3
total_timesteps = 1024
num-envs = 4
num_steps = 128

[grid]
clip_coef = [0.1, 0.2]
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three real runs, concurrently: a learning-rate grid, one grid point alone, a TOML config."""
    root = tmp_path_factory.mktemp("cli_runs")
    config_file = root / "settings.toml"
    config_file.write_text(TOML_CONFIG)
    grid, single, from_file = root / "grid", root / "single", root / "from_file"
    grid_flag = "learning_rate=" + ",".join(f"{v:g}" for v in GRID_LRS)
    procs = in_parallel(
        {
            "grid": lambda: cli(
                *TINY,
                "--grid",
                grid_flag,
                "--eval-episodes",
                "2",
                "--eval-every",
                "2",
                "--tensorboard",
                "--out",
                grid,
                cwd=root,
            ),  # fmt: skip
            "single": lambda: cli(*TINY, "--learning-rate", f"{GRID_LRS[1]:g}", "--out", single, cwd=root),
            "from_file": lambda: cli(
                "--config", config_file, "--learning-rate", "2e-3", "--no-progress", "--out", from_file, cwd=root
            ),
        }
    )
    return SimpleNamespace(root=root, grid=grid, single=single, from_file=from_file, procs=procs)


@pytest.fixture(scope="module")
def grid_run(runs):
    """The grid run's directory once it trained (its end, with evaluation, is checked by its own tests)."""
    proc = runs.procs["grid"]
    assert (runs.grid / "metrics.csv").is_file() and checkpoint_steps(runs.grid), describe(proc)
    return runs.grid


# ------------------------------------------------------------------ 1. a grid run's outputs
def test_grid_run_evaluates_every_k_iterations_into_eval_csv(grid_run):
    with open(grid_run / "eval.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # 2 grid points x 2 seeds, evaluated after iterations 2 and 4
    assert sorted((int(r["grid_point"]), int(r["seed"]), int(r["iteration"])) for r in rows) == [
        (g, s, i) for g in range(2) for s in range(2) for i in (2, 4)
    ]
    assert {int(r["env_steps"]) for r in rows} == {2 * BATCH, 4 * BATCH}
    assert all(1 <= float(r["eval_return"]) <= 500 for r in rows)  # CartPole returns, bounded by its time limit


def test_grid_run_writes_one_tensorboard_run_per_grid_point_and_seed(grid_run):
    runs = sorted(p.name for p in (grid_run / "tensorboard").iterdir())
    assert runs == ["grid0_seed0", "grid0_seed1", "grid1_seed0", "grid1_seed1"]
    for name in runs:
        events = list((grid_run / "tensorboard" / name).glob("events.out.tfevents.*"))
        assert events and events[0].stat().st_size > 1000, name  # 4 iterations x every metric


def test_grid_run_writes_config_json(grid_run):
    data = json.loads((grid_run / "config.json").read_text())
    assert data["config"]["env_id"] == "CartPole-v1"
    assert data["config"]["total_timesteps"] == 2048
    assert data["config"]["num_envs"] == 4 and data["config"]["num_steps"] == 128
    assert data["grid"] == {"learning_rate": list(GRID_LRS)}
    assert data["seeds"] == 2 and data["seed"] == 0
    assert data["eval_episodes"] == 2
    assert data["num_iterations"] == ITERATIONS
    assert data["environment"]["jax"] == importlib.metadata.version("jax")


def test_grid_run_writes_metrics_csv(grid_run):
    rows = read_rows(grid_run / "metrics.csv")
    assert len(rows) == len(GRID_LRS) * 2 * ITERATIONS
    for name in [*KEY_COLUMNS, *METRIC_COLUMNS]:
        assert name in rows[0], f"metrics.csv has no column {name!r}: {list(rows[0])}"
    keys = sorted((int(r["grid_point"]), int(r["seed"]), int(r["iteration"])) for r in rows)
    assert keys == [(g, s, i) for g in range(len(GRID_LRS)) for s in range(2) for i in range(1, ITERATIONS + 1)]
    for row in rows:
        g, i = int(row["grid_point"]), int(row["iteration"])
        assert int(row["env_steps"]) == i * BATCH
        assert float(row["hp_learning_rate"]) == pytest.approx(GRID_LRS[g], rel=1e-6)
        for name, value in HPARAM_DEFAULTS.items():
            assert float(row[f"hp_{name}"]) == pytest.approx(value, rel=1e-6), name
        # anneal_lr (default): lr0 * (1 - (i - 1) / n)
        assert float(row["learning_rate"]) == pytest.approx(GRID_LRS[g] * (1 - (i - 1) / ITERATIONS), rel=1e-5)
        for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm", "episode_return_last100"):
            assert np.isfinite(float(row[name])), (name, row)
    # The two grid points really trained with different learning rates.
    losses = column(rows, "value_loss").reshape(len(GRID_LRS), -1)
    assert not np.array_equal(losses[0], losses[1])


def test_grid_run_writes_summary_json(grid_run):
    summary = json.loads((grid_run / "summary.json").read_text())
    rows = read_rows(grid_run / "metrics.csv")
    assert summary["env_id"] == "CartPole-v1" and summary["seeds"] == 2
    assert summary["env_steps_per_seed"] == ITERATIONS * BATCH
    assert summary["compile_seconds"] > 0 and summary["run_seconds"] > 0
    assert summary["env_steps_per_second"] > 0
    points = summary["grid_points"]
    assert [p["grid_point"] for p in points] == list(range(len(GRID_LRS)))
    for g, point in enumerate(points):
        assert point["swept"] == {"learning_rate": pytest.approx(GRID_LRS[g])}
        final = point["final_return"]
        for key in ("mean", "std", "min", "max", "iqm", "ci95"):
            assert key in final, key
        # final return = per seed episode_return_last100 at the last iteration (metrics.csv).
        last = [r for r in rows if int(r["grid_point"]) == g and int(r["iteration"]) == ITERATIONS]
        per_seed = [float(np.float32(r["episode_return_last100"])) for r in sorted(last, key=lambda r: int(r["seed"]))]
        assert point["final_return_per_seed"] == pytest.approx(per_seed, rel=1e-6)
        assert final["mean"] == pytest.approx(np.mean(per_seed), rel=1e-6)
        assert final["std"] == pytest.approx(np.std(per_seed), rel=1e-5, abs=1e-9)
        assert final["min"] == pytest.approx(min(per_seed)) and final["max"] == pytest.approx(max(per_seed))
        assert final["min"] <= final["iqm"] <= final["max"]
        assert final["ci95"][0] <= final["mean"] <= final["ci95"][1]
        evaluation = point["eval_return"]
        for key in ("mean", "std", "min", "max", "iqm", "ci95"):
            assert key in evaluation, key
        assert 0 < evaluation["min"] <= evaluation["mean"] <= evaluation["max"] <= 500  # CartPole-v1 returns
    means = [p["final_return"]["mean"] for p in points]
    assert summary["best_grid_point"] == int(np.argmax(means))


def test_grid_run_writes_learning_curves_png(grid_run):
    assert (grid_run / "learning_curves.png").stat().st_size > 0
    assert_png(grid_run / "learning_curves.png")


def test_grid_run_writes_checkpoints(grid_run):
    steps = checkpoint_steps(grid_run)
    assert steps, f"no numeric checkpoint directory in {grid_run / 'checkpoints'}"
    assert steps[-1] == ITERATIONS


def test_grid_run_exits_0_and_prints_table_with_best_marked(runs, grid_run):
    assert_ok(runs.procs["grid"])
    stdout = runs.procs["grid"].stdout
    summary = json.loads((grid_run / "summary.json").read_text())
    rows = {}
    for g, lr in enumerate(GRID_LRS):
        lines = [line for line in stdout.splitlines() if f"learning_rate={lr:g} " in line]
        assert len(lines) == 1, f"no single table row for learning_rate={lr:g}:\n{stdout}"
        rows[g] = lines[0]
        assert f"{summary['grid_points'][g]['final_return']['mean']:.2f}" in lines[0]
    starred = [g for g, line in rows.items() if line.lstrip().startswith("*")]
    assert starred == [summary["best_grid_point"]], stdout


# ------------------------------------------------------------------ 2. grid point == separate run
def test_grid_point_equals_separate_run(runs, grid_run):
    assert_ok(runs.procs["single"])
    grid_rows = read_rows(grid_run / "metrics.csv")
    single_rows = read_rows(runs.single / "metrics.csv")
    assert len(single_rows) == 2 * ITERATIONS
    assert {r["grid_point"] for r in single_rows} == {"0"}

    def part(rows, g):
        return sorted(
            (r for r in rows if int(r["grid_point"]) == g), key=lambda r: (int(r["seed"]), int(r["iteration"]))
        )

    point, alone, other = part(grid_rows, 1), part(single_rows, 0), part(grid_rows, 0)
    for name in KEY_COLUMNS[1:]:
        assert [r[name] for r in point] == [r[name] for r in alone], name
    for name in METRIC_COLUMNS:
        np.testing.assert_allclose(column(point, name), column(alone, name), rtol=1e-5, atol=1e-7, equal_nan=True,
                                   err_msg=name)  # fmt: skip
    # The comparison discriminates: the other grid point's numbers differ.
    assert not np.allclose(column(other, "value_loss"), column(alone, "value_loss"), rtol=1e-5)


# ------------------------------------------------------------------ 6. --config FILE
def test_config_file_sets_values_and_flags_override(runs):
    assert_ok(runs.procs["from_file"])
    data = json.loads((runs.from_file / "config.json").read_text())
    assert data["seeds"] == 3
    assert data["hparams"] == {"learning_rate": pytest.approx(2e-3)}  # the flag beats the file's 1e-3
    assert data["grid"] == {"clip_coef": [0.1, 0.2]}
    assert data["config"]["total_timesteps"] == 1024 and data["config"]["num_envs"] == 4
    rows = read_rows(runs.from_file / "metrics.csv")
    assert len(rows) == 2 * 3 * 2  # grid points x seeds x iterations
    for row in rows:
        assert float(row["hp_learning_rate"]) == pytest.approx(2e-3)
        assert float(row["hp_clip_coef"]) == pytest.approx([0.1, 0.2][int(row["grid_point"])])
    assert {int(r["seed"]) for r in rows} == {0, 1, 2}


# ------------------------------------------------------------------ 7. load_policy, evaluate, plot
def test_load_policy_acts_on_single_and_batched_observations(grid_run):
    import jax

    from jaxppo.config import ConfigError
    from jaxppo.loading import load_policy

    act = load_policy(grid_run, seed=1, grid_point=0)
    key = jax.random.key(0)
    obs = np.array([0.01, -0.02, 0.03, 0.04], np.float32)
    action = np.asarray(act(obs, key))
    assert action.shape == () and np.issubdtype(action.dtype, np.integer)
    assert int(action) in (0, 1)
    assert int(np.asarray(act(obs, jax.random.key(1)))) == int(action)  # deterministic: the mode
    batch = np.random.default_rng(0).normal(0.0, 0.1, (7, 4)).astype(np.float32)
    actions = np.asarray(act(batch, key))
    assert actions.shape == (7,)
    assert set(actions.tolist()) <= {0, 1}
    assert int(actions[0]) == int(np.asarray(act(batch[0], key)))
    with pytest.raises(ConfigError):
        load_policy(grid_run, seed=2)


# ------------------------------------------------------------------ quick commands (no training)
MALFORMED_TOML = "seeds = [1\n"
RESUME_DIFF_YAML = "seeds: 5\nclip_coef: 0.1\n"
SCI_GRID_YAML = "grid:\n  learning_rate: [1e-3, 3e-3]\n"
WRONG_TYPE_TOML = {
    "toml_learning_rate_string": 'learning_rate = "fast"\n',
    "toml_seeds_string": 'seeds = "many"\n',
    "toml_eval_episodes_string": 'eval_episodes = "x"\n',
    "toml_hidden_sizes_int": "hidden_sizes = 64\n",
    "toml_env_kwargs_int": "env_kwargs = 5\n",
    "toml_grid_list_of_ints": "grid = [1, 2]\n",
    "toml_grid_int": "grid = 5\n",
}

# name -> (arguments, substrings the error line must contain); all must exit 2 and write nothing.
BAD_INPUTS = {
    "unknown_env": (["--env", "CartPol-v1"], ["CartPol-v1", "CartPole-v1"]),
    # --learning-rat would be accepted: argparse takes unambiguous prefixes of long options.
    "unknown_flag": (["--lerning-rate", "1e-3"], ["--lerning-rate", "--learning-rate"]),
    "minibatches_not_dividing": (["--num-minibatches", "3"], ["num_minibatches"]),
    "total_timesteps_too_small": (["--total-timesteps", "10"], ["total_timesteps"]),
    "gamma_out_of_range": (["--gamma", "1.5"], ["gamma"]),
    "num_envs_zero": (["--num-envs", "0"], ["num_envs"]),
    "seeds_zero": (["--seeds", "0"], ["seeds"]),
    "checkpoint_every_zero": (["--checkpoint-every", "0"], ["checkpoint-every"]),
    "grid_without_equals": (["--grid", "learning_rate"], ["learning_rate"]),
    "grid_unknown_field": (["--grid", "lr=1,2"], ["lr"]),
    "grid_not_numbers": (["--grid", "clip_coef=a,b"], ["clip_coef"]),
    "config_missing": (["--config", "missing.toml"], ["missing.toml"]),
    "config_malformed": (["--config", "{inputs}/malformed.toml"], ["malformed.toml"]),
    # A swept field given one value too would silently lose to the grid.
    "grid_and_flag_on_one_field": (
        ["--grid", "learning_rate=1e-3", "--learning-rate", "1e-4"],
        ["--grid learning_rate=0.001", "--learning-rate 0.0001"],
    ),
    "encoder_unknown": (["--encoder", "conv"], ["--encoder", "conv"]),
    "encoder_cnn_without_an_image": (["--encoder", "cnn"], ["encoder='cnn'", "(4,)"]),
    "cnn_layers_of_unequal_lengths": (["--cnn-channels", "16,32"], ["cnn_channels", "equal lengths"]),
    "cnn_stride_zero": (["--cnn-strides", "0"], ["cnn_strides"]),
    "cnn_kernel_larger_than_the_image": (["--env", "Breakout-MinAtar", "--cnn-kernels", "11"], ["(10, 10, 4)", "11x11"]),
    "pbt_range_reversed": (["--pbt", "--pbt-search", "learning_rate=1e-3:1e-5"], ["learning_rate", "LOW must be below HIGH"]),
    "pbt_search_not_traced": (["--pbt", "--pbt-search", "num_envs=1:8"], ["num_envs", "not a traced hyperparameter"]),
    "pbt_search_malformed": (["--pbt", "--pbt-search", "learning_rate=1e-5"], ["malformed", "NAME=LOW:HIGH"]),
    "pbt_log_range_from_zero": (["--pbt", "--pbt-search", "ent_coef=0:0.1:log"], ["ent_coef", "LOW > 0"]),
    "pbt_quantile_outside": (["--pbt", "--pbt-quantile", "0.7"], ["--pbt-quantile", "(0, 0.5]"]),
    "pbt_interval_zero": (["--pbt", "--pbt-interval", "0"], ["--pbt-interval", "positive"]),
    "pbt_one_seed": (["--pbt", "--seeds", "1"], ["--pbt", "at least 2", "--seeds"]),
    "pbt_settings_without_pbt": (["--pbt-interval", "5"], ["--pbt-interval", "add --pbt"]),
    "pbt_start_outside_range": (
        ["--pbt", "--learning-rate", "0.1", "--pbt-search", "learning_rate=1e-5:1e-3"],
        ["learning_rate starts at 0.1", "outside its --pbt-search range"],
    ),
}


# Run as processes, as a user starts them: errors of each stage (argparse, the env id, a config
# file, the output directory, --resume) with their real exit status, and the commands that
# compile. The other quick commands call main in the test process.
AS_PROCESSES = {"unknown_env", "unknown_flag", "config_malformed", "toml_seeds_string", "existing_out",
                "resume_flag_differs", "resume_missing_dir", "resume_no_checkpoints", "evaluate"}  # fmt: skip


@pytest.fixture(scope="module")
def quick(runs, grid_run):
    """Every command that should answer without training, run concurrently."""
    root = runs.root / "quick"
    inputs = root / "inputs"
    inputs.mkdir(parents=True)
    (inputs / "malformed.toml").write_text(MALFORMED_TOML)
    (inputs / "resume_diff.yaml").write_text(RESUME_DIFF_YAML)
    (inputs / "sci_grid.yaml").write_text(SCI_GRID_YAML)
    for name, text in WRONG_TYPE_TOML.items():
        (inputs / f"{name}.toml").write_text(text)
    no_checkpoints = root / "no_checkpoints"
    no_checkpoints.mkdir()
    shutil.copy(runs.single / "config.json", no_checkpoints / "config.json")  # as if killed before any checkpoint
    empty = root / "empty"
    empty.mkdir()
    before = {"grid": snapshot(grid_run), "no_checkpoints": snapshot(no_checkpoints)}

    commands = {}  # name -> (module, args)
    for name, (args, _) in BAD_INPUTS.items():
        commands[name] = ("jaxppo.run", [*TINY, *(a.format(inputs=inputs) for a in args), "--out", "out"])
    for name in WRONG_TYPE_TOML:  # no flag may override the file's wrong value
        small = ["--total-timesteps", "2048", "--num-envs", "4", "--num-steps", "128", "--no-progress"]
        if name == "toml_grid_int":  # ignored grid: fail fast (on the budget) instead of training
            small += ["--total-timesteps", "10"]
        commands[name] = ("jaxppo.run", [*small, "--config", inputs / f"{name}.toml", "--out", "out"])
    commands["existing_out"] = ("jaxppo.run", [*TINY, "--grid", "learning_rate=1e-3,3e-3", "--out", grid_run])
    commands["resume_flag_differs"] = ("jaxppo.run", ["--resume", grid_run, "--learning-rate", "0.1"])
    commands["resume_architecture_differs"] = (
        "jaxppo.run",
        ["--resume", grid_run, "--shared-trunk", "--hidden-sizes", "32", "--cnn-channels", "8"],
    )
    commands["resume_yaml_differs"] = ("jaxppo.run", ["--resume", grid_run, "--config", inputs / "resume_diff.yaml"])
    commands["resume_yaml_sci_grid"] = (
        "jaxppo.run",
        ["--resume", grid_run, "--config", inputs / "sci_grid.yaml", "--clip-coef", "0.1"],
    )
    commands["resume_no_checkpoints"] = ("jaxppo.run", ["--resume", no_checkpoints, "--no-progress"])
    commands["resume_no_config"] = ("jaxppo.run", ["--resume", empty])
    commands["resume_missing_dir"] = ("jaxppo.run", ["--resume", root / "missing"])
    commands["evaluate"] = ("jaxppo.evaluate", [grid_run, "--episodes", "2"])
    commands["plot"] = ("jaxppo.plot", [grid_run, runs.single, "--out", "x.png"])

    cwds = {}
    for name in commands:
        cwds[name] = root / "cwd" / name
        cwds[name].mkdir(parents=True)

    def job(name):
        module, args = commands[name]
        return lambda: cli(*args, cwd=cwds[name], module=module, timeout=QUICK_TIMEOUT)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        started = {name: pool.submit(job(name)) for name in AS_PROCESSES}
        procs = {}
        for name, (module, args) in commands.items():
            if name not in AS_PROCESSES:
                procs[name] = in_this_process(*args, cwd=cwds[name], module=module)
        procs.update({name: future.result() for name, future in started.items()})
    return SimpleNamespace(procs=procs, cwds=cwds, before=before, no_checkpoints=no_checkpoints, empty=empty)


def assert_wrote_nothing(quick, name) -> None:
    leftovers = sorted(p.name for p in quick.cwds[name].iterdir())
    assert leftovers == [], f"{name} wrote {leftovers} into its working directory"


# ------------------------------------------------------------------ 5. bad input
@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(quick, name):
    line = assert_one_line_error(quick.procs[name])
    for text in BAD_INPUTS[name][1]:
        assert text in line, f"{text!r} not in {line!r}"
    assert_wrote_nothing(quick, name)


def test_out_holding_a_run_is_refused_and_left_unchanged(quick, grid_run):
    line = assert_one_line_error(quick.procs["existing_out"])
    assert "--overwrite" in line and "--resume" in line, line
    after = snapshot(grid_run)
    assert sorted(after) == sorted(quick.before["grid"])
    assert after["metrics.csv"] == quick.before["grid"]["metrics.csv"]
    assert after == quick.before["grid"], "a refused command changed files of the existing run"
    assert_wrote_nothing(quick, "existing_out")


@pytest.mark.parametrize("name", list(WRONG_TYPE_TOML))
def test_config_file_value_of_wrong_type_is_one_line_exit_2(quick, name):
    line = assert_one_line_error(quick.procs[name])
    if "grid" in name:
        assert "grid" in line, line
    assert_wrote_nothing(quick, name)


# ------------------------------------------------------------------ 4. resume refusals
def test_resume_with_different_flag_is_refused(quick, grid_run):
    line = assert_one_line_error(quick.procs["resume_flag_differs"])
    assert "learning_rate" in line and "0.1" in line, line
    assert snapshot(grid_run) == quick.before["grid"]


def test_resume_with_a_different_architecture_is_refused_listing_every_difference(quick, grid_run):
    line = assert_one_line_error(quick.procs["resume_architecture_differs"])
    for field in ("shared_trunk", "hidden_sizes", "cnn_channels"):
        assert f"config.{field}" in line, line
    assert snapshot(grid_run) == quick.before["grid"]


def test_resume_with_different_yaml_config_is_refused(quick):
    line = assert_one_line_error(quick.procs["resume_yaml_differs"])
    assert "clip_coef" in line and "seeds" in line, line  # both differences listed


def test_yaml_grid_in_exponent_notation_is_read_as_numbers(quick):
    # The grid in the YAML file equals the run's grid, so only the --clip-coef flag may differ.
    line = assert_one_line_error(quick.procs["resume_yaml_sci_grid"])
    assert "clip_coef" in line and "grid" not in line.split("different settings:")[1], line


@pytest.mark.parametrize("name", ["resume_no_config", "resume_missing_dir"])
def test_resume_without_a_resumable_run_is_refused(quick, name):
    assert_one_line_error(quick.procs[name])
    assert_wrote_nothing(quick, name)
    assert list(quick.empty.iterdir()) == []
    assert not (quick.cwds[name].parent.parent / "missing").exists()


def test_resume_of_a_run_without_a_checkpoint_trains_it_from_the_start(quick, runs):
    proc = quick.procs["resume_no_checkpoints"]
    assert_ok(proc)
    assert "from iteration 0" in proc.stderr, describe(proc)
    assert (quick.no_checkpoints / "config.json").read_bytes() == quick.before["no_checkpoints"]["config.json"]
    assert (quick.no_checkpoints / "metrics.csv").read_text() == (runs.single / "metrics.csv").read_text()
    assert_wrote_nothing(quick, "resume_no_checkpoints")


# ------------------------------------------------------------------ 7. evaluate and plot commands
def test_evaluate_command_prints_a_line_per_seed(quick):
    proc = quick.procs["evaluate"]
    assert_ok(proc)
    seed_lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("seed ")]
    assert len(seed_lines) == len(GRID_LRS) * 2, proc.stdout
    for g in range(len(GRID_LRS)):
        assert f"grid point {g}" in proc.stdout, proc.stdout
    for line in seed_lines:
        value = float(line.split(":", 1)[1].split()[0])
        assert 0 < value <= 500, line


def test_plot_command_writes_png(quick):
    proc = quick.procs["plot"]
    assert_ok(proc)
    assert_png(quick.cwds["plot"] / "x.png")


# ------------------------------------------------------------------ 3. interrupt + resume
# 80 iterations, defaults; a checkpoint every 8 (writing one takes about a tenth of a second)
RESUME_FLAGS = [*TINY, "--total-timesteps", "40960", "--checkpoint-every", "8"]
# [10, 10, 4] images, 8 iterations of 4 envs x 32 steps
# encoder "auto" (the default) with progress lines: the run says it chose a CNN, and records it
CNN_FLAGS = [*(f for f in TINY if f != "--no-progress"), "--env", "Breakout-MinAtar", "--num-steps", "32",
             "--total-timesteps", str(8 * 4 * 32)]  # fmt: skip


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_interrupt_then_resume_equals_uninterrupted_run(tmp_path):
    assert_interrupt_then_resume_equals_uninterrupted_run(tmp_path, RESUME_FLAGS)


def test_a_cnn_run_records_its_architecture_and_its_policy_loads_and_evaluates(tmp_path):
    # Its checkpoints continue exactly like the MLP's above: test_encoders continues CNN runs
    # from the checkpoints the CLI writes (rundir.save_checkpoint / restore_checkpoint).
    proc = cli(*CNN_FLAGS, "--out", "cnn", cwd=tmp_path)
    assert_ok(proc)
    config = json.loads((tmp_path / "cnn" / "config.json").read_text())
    architecture = {name: config["config"][name] for name in ("encoder", "cnn_channels", "cnn_kernels", "cnn_strides",
                                                              "shared_trunk", "hidden_sizes", "activation")}  # fmt: skip
    assert architecture == {"encoder": "auto", "cnn_channels": [16], "cnn_kernels": [3], "cnn_strides": [1],
                            "shared_trunk": False, "hidden_sizes": [64, 64], "activation": "tanh"}  # fmt: skip
    built = config["architecture"]
    assert built["encoders"] == {"observation": {"shape": [10, 10, 4], "encoder": "cnn", "channels": [16],
                                                 "kernels": [3], "strides": [1]}}  # fmt: skip
    assert built["distribution"] == "categorical over 3 actions" and built["recurrent_core"] is None
    assert built["layout"] == "separate actor and critic" and built["parameters"] > 0
    first_lines = proc.stderr.splitlines()[:3]
    assert any("policy: observation [10x10x4] -> cnn (16@3x3/1) -> mlp 64,64 tanh" in line for line in first_lines), proc.stderr
    assert checkpoint_steps(tmp_path / "cnn")[-1] == 8
    from jaxppo import load_policy

    policy = load_policy(tmp_path / "cnn", seed=1)
    obs = np.zeros((10, 10, 4), np.float32)
    assert policy.predict(obs) in (0, 1, 2) and policy.predict(np.stack([obs] * 3)).shape == (3,)
    evaluated = cli(tmp_path / "cnn", "--episodes", "2", module="jaxppo.evaluate", cwd=tmp_path)
    assert_ok(evaluated)
    assert len([line for line in evaluated.stdout.splitlines() if line.strip().startswith("seed ")]) == 2, evaluated.stdout


def assert_interrupt_then_resume_equals_uninterrupted_run(tmp_path: Path, flags: list) -> None:
    """An 80-iteration run of ``flags``, interrupted after a checkpoint and resumed, equals the
    same run uninterrupted: logs, summary, parameters and every state, bit for bit."""
    interrupted, reference = tmp_path / "interrupted", tmp_path / "reference"
    reference_proc = popen(*flags, "--out", reference, cwd=tmp_path)
    proc = popen(*flags, "--out", interrupted, cwd=tmp_path)
    try:
        stopped = interrupt_after_first_checkpoint(proc, interrupted)
        err = stopped.stderr
        assert proc.returncode == 130, "the run was not interrupted (make it longer?)\n" + describe(stopped)
        assert "--resume" in err and "Traceback" not in err, describe(stopped)
        done = checkpoint_steps(interrupted)[-1]
        assert 0 < done < 80
        partial_csv = (interrupted / "metrics.csv").read_text()
        partial = read_rows(interrupted / "metrics.csv")
        assert len(partial) == 2 * done and max(int(r["iteration"]) for r in partial) == done

        resumed = cli("--resume", interrupted, "--no-progress", cwd=tmp_path)
        assert_ok(resumed)
        ref_out, ref_err = reference_proc.communicate(timeout=RUN_TIMEOUT)
        assert reference_proc.returncode == 0, f"{ref_out}\n{ref_err}"
    finally:
        for p in (proc, reference_proc):
            if p.poll() is None:
                p.kill()
                p.communicate()

    assert_timings_add_up_over_parts(json.loads((interrupted / "summary.json").read_text()), [0, done, 80], agents=2)
    assert_resuming_a_finished_run_changes_nothing(interrupted, tmp_path)

    reference_csv = (reference / "metrics.csv").read_text()
    resumed_csv = (interrupted / "metrics.csv").read_text()
    reference_lines = reference_csv.splitlines()
    assert len(reference_lines) == 1 + 2 * 80
    # The logs saved at the interrupt are the first iterations of the uninterrupted run.
    header, *body = reference_lines
    iteration = header.split(",").index("iteration")
    assert partial_csv.splitlines() == [header, *(line for line in body if int(line.split(",")[iteration]) <= done)]
    assert resumed_csv.splitlines() == reference_lines  # bit-identical numbers
    timings = ("compile_seconds", "run_seconds", "env_steps_per_second")  # wall clock, never equal
    summaries = [
        [{k: v for k, v in point.items() if k not in timings} for point in json.loads((d / "summary.json").read_text())["grid_points"]]
        for d in (interrupted, reference)
    ]  # fmt: skip
    assert summaries[0] == summaries[1]

    import jax

    from jaxppo.loading import load_run

    runs = [load_run(d) for d in (interrupted, reference)]
    assert [r.iteration for r in runs] == [80, 80]
    params = [r.states.params for r in runs]
    assert jax.tree.structure(params[0]) == jax.tree.structure(params[1])
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)), *params)))

    def storable(x):
        return jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x

    states = [jax.tree.map(storable, r.states) for r in runs]
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)), *states)))


def assert_timings_add_up_over_parts(summary: dict, boundaries: list[int], agents: int) -> None:
    """summary.json's timings cover every leg (a new run, then each --resume) that trained it."""
    parts = summary["parts"]
    expected = [list(b) for b in zip(boundaries[:-1], boundaries[1:], strict=True)]
    assert [p["iterations"] for p in parts] == expected, parts
    assert all(p["compile_seconds"] > 0 and p["run_seconds"] > 0 for p in parts), parts
    assert summary["run_seconds"] == pytest.approx(sum(p["run_seconds"] for p in parts))
    assert summary["compile_seconds"] == pytest.approx(sum(p["compile_seconds"] for p in parts))
    steps = agents * boundaries[-1] * BATCH
    assert summary["env_steps_per_second"] == pytest.approx(steps / summary["run_seconds"])


def assert_resuming_a_finished_run_changes_nothing(run_dir: Path, cwd: Path) -> None:
    before = snapshot(run_dir)
    again = cli("--resume", run_dir, "--no-progress", cwd=cwd, timeout=QUICK_TIMEOUT)
    assert_ok(again)
    assert "is finished" in again.stderr and "nothing changed" in again.stderr, describe(again)
    assert snapshot(run_dir) == before, "resuming a finished run rewrote its files"


def test_a_run_fills_the_compilation_cache_and_an_identical_run_only_reads_it(tmp_path):
    # The CLI ends a successful run with os._exit (no interpreter teardown): nothing it writes,
    # the persistent compilation cache included, may be lost to that.
    env = {**ENV, "JAXPPO_CACHE_DIR": str(tmp_path / "cache")}
    entries = []
    for name in ("first", "second"):
        proc = cli(*TINY, "--out", name, cwd=tmp_path, env=env)
        assert_ok(proc)
        assert json.loads((tmp_path / name / "summary.json").read_text())["grid_points"][0]["final_return"]
        entries.append(sorted(p.name for p in (tmp_path / "cache").iterdir()))
    assert entries[0], "the first run cached no executable"
    assert entries[1] == entries[0], "the identical second run compiled something again"


def test_wandb_logs_one_offline_run_per_grid_point(tmp_path):
    env = {**ENV, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.run(
        [sys.executable, "-m", "jaxppo.run", *TINY, "--grid", "clip_coef=0.1,0.2", "--wandb", "--out", "run"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = sorted((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2, runs
    for run in runs:
        assert list(run.glob("run-*.wandb"))[0].stat().st_size > 0

"""A cheap sample of ``experiments/sweep_suites.py`` (which trains every registered env of every
suite from the command line): a few env ids per suite through the script's own ``run_env`` and
``classify``, none of which may crash, and the envs whose fixes the full sweep needed:
``pgx/minatar-asterix`` (a zero-size array in its state) trains and checkpoints,
``jumanji/Sokoban-v0`` (levels downloaded at run time) is refused in one line, and
``playground/CheetahRun``'s state (a Python float in its reset state) traces through the adapter
(its CLI run compiles for about a minute here, so only its reset and step are traced).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from jaxppo import suites

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "sweep_suites.py"


def _load_script():
    """The sweep script as a module (``experiments/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("sweep_suites", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sweep = _load_script()


def installed(env_id: str) -> bool:
    suite = suites.SUITES[env_id.split("/", 1)[0]]
    return all(importlib.util.find_spec(package) is not None for package in suite.imports)


def run(env_id: str, tmp_path) -> dict:
    if not installed(env_id):
        pytest.skip(f"{env_id.split('/', 1)[0]} is not installed")
    # conftest already puts the fast-compile flags in XLA_FLAGS for child processes.
    return sweep.run_sweep_env(env_id, timeout_s=100, fast_compile=False, workdir=tmp_path)


# Per suite, the cheapest env ids of the full sweep (a few seconds each on 2 cores): ones that
# train, and refusals that the adapters give before compiling anything.
SAMPLE = {
    "navix/Navix-Empty-5x5-v0": "trained",
    "xminigrid/MiniGrid-Empty-5x5": "trained",
    "xminigrid/XLand-MiniGrid-R1-9x9": "refused",  # a meta-RL env needs benchmark=
    "jumanji/RubiksCube-partly-scrambled-v0": "trained",
    "pgx/chess": "refused",  # two players
    "brax/fast": "trained",
    "playground/Go1JoystickFlatTerrain": "refused",  # needs mujoco_menagerie, downloaded on first use
    # craftax compiles for about 40 s: test_suite_craftax's command-line run covers it
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("env_id", list(SAMPLE))
def test_a_sample_of_each_suite_trains_or_is_refused_in_one_line(env_id, tmp_path):
    row = run(env_id, tmp_path)
    assert row["status"] == SAMPLE[env_id], row["message"]


@pytest.mark.timeout(120)
def test_minatar_asterix_trains_and_checkpoints(tmp_path):
    row = run("pgx/minatar-asterix", tmp_path)
    assert row["status"] == "trained", row["message"]  # trained: exit 0 and a complete checkpoint


@pytest.mark.timeout(60)
def test_sokoban_is_refused_in_one_line_naming_the_download(tmp_path):
    row = run("jumanji/Sokoban-v0", tmp_path)
    assert row["status"] == "refused", row["message"]
    assert "Hugging Face hub" in row["message"] and "generator" in row["message"]


@pytest.mark.timeout(60)
def test_cheetah_run_reset_and_step_trace_with_the_same_state_leaves(tmp_path, monkeypatch):
    pytest.importorskip("mujoco_playground")
    import jax
    import jax.numpy as jnp

    from jaxppo.envs import make

    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings to MUJOCO_LOG.TXT in the working directory
    env, params = make("playground/CheetahRun")
    key = jax.random.key(0)
    # Its raw reset state holds data.time as a Python float; the stepped state, as an array.
    reset = jax.eval_shape(lambda k: env.reset(k, params)[1], key)
    stepped = jax.eval_shape(lambda k, s: env.step(k, s, jnp.zeros(env.num_actions), params)[1], key, reset)
    assert jax.tree.structure(reset) == jax.tree.structure(stepped)
    leaves = [(leaf.shape, leaf.dtype) for leaf in jax.tree.leaves(reset)]
    assert leaves == [(leaf.shape, leaf.dtype) for leaf in jax.tree.leaves(stepped)]


def test_drop_empty_turns_scalars_into_arrays_and_drops_zero_size_arrays():
    import jax.numpy as jnp
    import numpy as np

    from jaxppo.suites._brax_like import drop_empty, restore_empty

    state = {"time": 0.0, "count": 3, "empty": jnp.zeros((0, 3)), "x": np.ones(2, np.float32)}
    dropped = drop_empty(state)
    assert dropped["empty"] is None
    assert dropped["time"].dtype == jnp.float32 and dropped["count"].dtype == jnp.int32
    template = {key: jnp.asarray(value) for key, value in state.items()}
    restored = restore_empty(dropped, template)
    assert restored["empty"].shape == (0, 3) and restored["x"].shape == (2,)


def test_classify(tmp_path):
    """The script's three outcomes, from an exit status, the output and the run directory."""
    error = f"{sweep.ERROR_PREFIX} navix/X is unknown; did you mean navix/Y?"
    assert sweep.classify(2, "", error + "\n", tmp_path) == ("refused", error)
    assert sweep.classify(2, "", "Traceback (most recent call last):\n" + error, tmp_path)[0] == "crashed"
    assert sweep.classify(2, "", "a warning\n" + error, tmp_path)[0] == "crashed"  # not one line
    assert sweep.classify(1, "", "Traceback ...\nAttributeError: x", tmp_path)[0] == "crashed"
    assert sweep.classify(None, "", "", tmp_path) == ("crashed", "timed out")
    assert sweep.classify(0, "compile 1.0 s, run 0.1 s\n", "", tmp_path)[0] == "crashed"  # no checkpoint
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "2.npz").write_bytes(b"")
    assert sweep.classify(0, "compile 1.0 s, run 0.1 s\n", "", tmp_path) == ("trained", "compile 1.0 s, run 0.1 s")


def test_sample_is_deterministic_and_spread_across_families():
    ids = [f"navix/Navix-{family}-{size}x{size}-v0" for family in ("Empty", "DoorKey", "LavaGap") for size in (5, 6, 8)]
    chosen = sweep.sample(ids, 3)
    assert chosen == sweep.sample(list(ids), 3)
    assert len({sweep.family(env_id) for env_id in chosen}) == 3
    assert sorted(sweep.sample(ids, 100)) == sorted(ids)

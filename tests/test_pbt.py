"""Population-based training: an exploit copies the parent's learner exactly and nothing else,
exploration stays inside its ranges, a population rescues a learning rate too small to learn, and
with no exploit inside the run it is the plain run bit for bit (library and command line); a
``--pbt`` run resumes bit for bit, an exploit at the resume point included."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxppo
from cli_harness import TINY, assert_ok, assert_png, cli, column, read_rows
from jaxppo import pbt
from jaxppo.pbt import PBTConfig, Population, SearchRange, exploit_and_explore, explore, make_pbt_train
from utils import FULL_OPTIMIZATION, tree_equal

CONFIG = jaxppo.PPOConfig(env_id="CartPole-v1", total_timesteps=8 * 512)
SEARCH = ("learning_rate=1e-5:1e-2:log", "ent_coef=0:0.05")


@pytest.fixture(scope="module")
def members():
    """Four CartPole members after two iterations (their learners differ), and their population."""
    trainer = jaxppo.make_trainer(CONFIG)
    keys = jax.random.split(jax.random.key(3), 4)
    hparams = pbt.initial_population(PBTConfig(search=SEARCH), jaxppo.PPOHParams(), "discrete",
                                     jax.random.key(0), (4,)).hparams  # fmt: skip
    states = jax.vmap(trainer.init)(keys, hparams)
    step = jax.jit(jax.vmap(trainer.step))
    for _ in range(2):
        states, _ = step(states, hparams)
    return states, hparams


def _population(hparams, returns, episodes=None):
    episodes = jnp.ones(len(returns), jnp.int32) if episodes is None else jnp.asarray(episodes, jnp.int32)
    return Population(hparams, jnp.asarray(returns, jnp.float32) * episodes, episodes)


LEARNER = pbt.LEARNER_FIELDS
OWN = ("env_state", "obs", "episode_return", "episode_length", "recent_returns", "recent_count", "key", "iteration")


def _member(tree, index):
    return jax.tree.map(lambda x: x[index], tree)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("jitted", [False, True])
def test_the_bottom_member_carries_its_parents_learner_and_keeps_its_own_envs(members, jitted):
    states, hparams = members
    config = PBTConfig(search=SEARCH, quantile=0.25)  # 4 members: the worst copies the best
    exploit = lambda k, s, p: exploit_and_explore(config, k, s, p, members=4)
    exploit = jax.jit(exploit) if jitted else exploit
    population = _population(hparams, [10.0, 40.0, 20.0, 30.0])
    after, new_population, parent = exploit(jax.random.key(7), states, population)
    assert np.asarray(parent).tolist() == [1, -1, -1, -1]
    for name in LEARNER:
        assert tree_equal(_member(getattr(after, name), 0), _member(getattr(states, name), 1)), name
        for other in (1, 2, 3):  # the parent and the others are unchanged
            assert tree_equal(_member(getattr(after, name), other), _member(getattr(states, name), other)), name
    for name in OWN:  # never copied: the child goes on in its own envs with its own randomness
        assert tree_equal(getattr(after, name), getattr(states, name)), name
    assert not tree_equal(_member(states.params, 0), _member(states.params, 1))
    # the child explores from its parent's values, inside the ranges; the others keep theirs
    for r in config.search:
        value, before = np.asarray(getattr(new_population.hparams, r.name)), np.asarray(getattr(hparams, r.name))
        assert r.low <= value[0] <= r.high
        assert np.array_equal(value[1:], before[1:])
    assert np.asarray(new_population.window_episodes).tolist() == [0, 0, 0, 0]  # every window starts again


@pytest.mark.timeout(60)
def test_ties_unranked_members_and_padding_never_copy(members):
    states, hparams = members
    config = PBTConfig(search=SEARCH, quantile=0.5)
    key = jax.random.key(0)
    # equal scores: nobody is better, nobody copies
    assert np.asarray(exploit_and_explore(config, key, states, _population(hparams, [5.0] * 4), 4)[2]).tolist() == [-1] * 4
    # member 0 finished no episode in the window: it is not ranked (three ranked: one copy)
    no_episode = _population(hparams, [0.0, 10.0, 20.0, 30.0], episodes=[0, 1, 1, 1])
    assert np.asarray(exploit_and_explore(config, key, states, no_episode, 4)[2]).tolist() == [-1, 3, -1, -1]
    # member 3 pads the population for the devices: never a parent, never a child
    padded = _population(hparams, [10.0, 30.0, 20.0, 99.0])
    assert np.asarray(exploit_and_explore(config, key, states, padded, 3)[2]).tolist() == [1, -1, -1, -1]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    low=st.floats(1e-6, 1.0),
    span=st.floats(1.01, 1e3),
    log=st.booleans(),
    factors=st.lists(st.floats(0.1, 10.0), min_size=1, max_size=3),
    resample=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
    position=st.floats(0.0, 1.0),
)
def test_exploration_stays_inside_the_ranges(low, span, log, factors, resample, seed, position):
    high = low * span
    r = SearchRange("learning_rate", low, high, log)
    config = PBTConfig(search=(r,), perturb_factors=tuple(factors), resample_probability=resample)
    start = low + position * (high - low)
    hparams = jaxppo.PPOHParams(learning_rate=jnp.full(16, start, jnp.float32), gamma=jnp.full(16, 0.99))
    children = jnp.arange(16) % 2 == 0
    out = explore(config, jax.random.key(seed), hparams, children)
    values = np.asarray(out.learning_rate, np.float64)
    tolerance = 1e-6 * high  # float32 rounding of the bounds
    assert np.all(values >= low - tolerance) and np.all(values <= high + tolerance)
    assert np.array_equal(values[1::2], np.asarray(hparams.learning_rate)[1::2])  # not children: unchanged
    assert np.array_equal(np.asarray(out.gamma), np.asarray(hparams.gamma))  # not searched: unchanged


def test_search_ranges_parse_and_refuse_in_one_line():
    assert SearchRange.parse("learning_rate=1e-5:1e-3:log") == SearchRange("learning_rate", 1e-5, 1e-3, True)
    assert PBTConfig(search={"clip_coef": (0.1, 0.3)}).search == (SearchRange("clip_coef", 0.1, 0.3),)
    for text, words in [("gamma=0.9:1.1", "[0.0, 1.0]"), ("lr=1:2", "not a traced"), ("clip_coef=0.3:0.1", "below")]:
        with pytest.raises(jaxppo.ConfigError) as error:
            SearchRange.parse(text)
        assert words in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(jaxppo.ConfigError, match="at least 2"):
        PBTConfig().validate(1)


@pytest.mark.timeout(180)
def test_with_no_exploit_inside_the_run_it_is_the_plain_run_bit_for_bit():
    keys = jax.random.split(jax.random.key(0), 3)
    hp = jaxppo.PPOHParams(learning_rate=1e-3)
    plain = jax.jit(jax.vmap(jaxppo.make_train(CONFIG), in_axes=(0, None)))(keys, hp)
    population = jax.jit(make_pbt_train(CONFIG, PBTConfig(interval=8, search=SEARCH[:1])))
    result = population(keys, hp)
    assert tree_equal(plain.state, result.state)
    for name, values in plain.metrics.items():
        assert np.array_equal(np.asarray(values), np.asarray(result.metrics[name]), equal_nan=True), name
    assert np.all(np.asarray(result.metrics["pbt_parent"]) == -1)
    assert np.all(np.asarray(result.metrics["hp_learning_rate"]) == np.float32(1e-3))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_population_rescues_a_learning_rate_too_small_to_learn():
    """Every member starts at learning rate 1e-6: with fixed settings none learns CartPole in 50k
    steps (returns about 22, a random policy's); the population finds working rates."""
    config = jaxppo.PPOConfig(env_id="CartPole-v1", total_timesteps=50_000)
    keys = jax.random.split(jax.random.key(1), 8)
    hp = jaxppo.PPOHParams(learning_rate=1e-6)
    # Running, not compiling, is the cost here: XLA's optimisations on (conftest turns them off).
    fixed = jax.jit(jax.vmap(jaxppo.make_train(config), in_axes=(0, None)), compiler_options=FULL_OPTIMIZATION)
    search = PBTConfig(interval=5, search=("learning_rate=1e-6:1e-2:log",))
    population = jax.jit(make_pbt_train(config, search), compiler_options=FULL_OPTIMIZATION)
    fixed, population = fixed(keys, hp), population(keys, hp)
    fixed_returns = np.asarray(fixed.metrics["episode_return_last100"])[:, -1]
    returns = np.asarray(population.metrics["episode_return_last100"])[:, -1]
    assert fixed_returns.max() < 40, fixed_returns
    assert np.median(returns) > 150 and returns.max() > 200, returns
    assert np.median(np.asarray(population.metrics["hp_learning_rate"])[:, -1]) > 1e-5


# ------------------------------------------------------------------ the command line
PBT = ["--pbt", "--pbt-interval", "3", *(a for s in SEARCH for a in ("--pbt-search", s))]
# The README's command with the defaults' sizes (4 envs x 128 steps), 3 seeds padded to 4 over the 2
# host devices (copies cross devices), a shorter budget; no annealing, so the run can be extended.
USER = ["--env", "CartPole-v1", "--seeds", "3", "--no-anneal-lr", "--no-progress", *PBT]
FULL, HALF = 12 * 512, 6 * 512


@pytest.fixture(scope="module")
def pbt_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pbt")
    full, half = root / "full", root / "half"
    assert_ok(cli(*USER, "--total-timesteps", FULL, "--out", full, cwd=root))
    assert_ok(cli(*USER, "--total-timesteps", HALF, "--out", half, cwd=root))
    resumed = cli("--resume", half, "--total-timesteps", FULL, "--no-progress", cwd=root)
    assert_ok(resumed)
    return full, half, root


@pytest.mark.timeout(300)
def test_a_pbt_run_resumed_across_an_exploit_equals_the_run_in_one_go(pbt_runs):
    full, half, _ = pbt_runs
    for name in ("metrics.csv", "pbt.csv"):
        assert read_rows(full / name) == read_rows(half / name), name
    assert (HALF // 512) % 3 == 0  # the resume point is an exploit's


@pytest.mark.timeout(300)
def test_a_pbt_run_writes_its_copies_schedules_and_population_summary(pbt_runs):
    full, _, _ = pbt_runs
    rows, copies = read_rows(full / "metrics.csv"), read_rows(full / "pbt.csv")
    parent = column(rows, "pbt_parent")
    assert len(copies) == int((parent >= 0).sum()) > 0
    for copy in copies:
        assert int(copy["iteration"]) % 3 == 0 and copy["member"] != copy["parent"]
        assert float(copy["parent_score"]) > float(copy["member_score"])
        assert 1e-5 <= float(copy["learning_rate_after"]) <= 1e-2 and 0 <= float(copy["ent_coef_after"]) <= 0.05
        # the child's hp_* columns show the new values from the iteration after the copy
        row = next(r for r in rows if r["seed"] == copy["member"] and int(r["iteration"]) == int(copy["iteration"]) + 1)
        assert row["hp_learning_rate"] == copy["learning_rate_after"]
    assert len(set(column(rows, "hp_learning_rate"))) > 3  # drawn, then explored: per member and iteration
    assert set(column(rows, "hp_gamma")) == {0.99}  # not searched: never changes
    summary = json.loads((full / "summary.json").read_text())["grid_points"][0]["pbt"]
    final = np.asarray(json.loads((full / "summary.json").read_text())["grid_points"][0]["final_return_per_seed"])
    assert summary["members"] == 3 and summary["exploits"] == len(copies)
    assert summary["best_return"] == final.max() and math.isclose(summary["median_return"], np.median(final))
    assert [h["seed"] for h in summary["final_hparams"]] == [0, 1, 2]
    assert_png(full / "pbt.png")


@pytest.mark.timeout(300)
def test_pbt_with_the_interval_beyond_the_run_is_the_plain_run_and_its_policy_loads(pbt_runs):
    full, _, root = pbt_runs
    small = [*TINY, "--seeds", "3"]
    plain, population = root / "plain", root / "population"
    assert_ok(cli(*small, "--out", plain, cwd=root))
    assert_ok(cli(*small, "--pbt", "--pbt-interval", "100", "--out", population, cwd=root))
    plain_rows, population_rows = read_rows(plain / "metrics.csv"), read_rows(population / "metrics.csv")
    assert [{k: r[k] for k in plain_rows[0]} for r in population_rows] == plain_rows
    policy = jaxppo.load_policy(full, seed=2)
    assert policy.predict(np.zeros(4, np.float32)) in (0, 1)
    assert_ok(cli(full, "--episodes", "2", module="jaxppo.evaluate", cwd=root))


def test_a_plot_labels_grid_points_by_what_they_sweep_not_by_a_members_explored_values(tmp_path):
    from jaxppo.plotting import curves_from_csv
    from jaxppo.rundir import metrics_csv

    grid, seeds, iterations = 2, 3, 4
    shape = (grid, seeds, iterations)
    rng = np.random.default_rng(0)
    metrics = {"env_steps": np.broadcast_to(np.arange(1, iterations + 1) * 512, shape),
               "episode_return": rng.uniform(0, 100, shape),
               "hp_learning_rate": rng.uniform(1e-4, 1e-2, shape).astype(np.float32)}  # explored per member
    rows = [dict(jaxppo.default_hparams("discrete").items()) | {"clip_coef": c} for c in (0.1, 0.3)]
    rows = [{k: float(v) for k, v in r.items()} for r in rows]
    (tmp_path / "metrics.csv").write_text(metrics_csv(metrics, rows))
    assert [label for label, _, _ in curves_from_csv(tmp_path / "metrics.csv")] == ["clip_coef=0.1", "clip_coef=0.3"]


@pytest.mark.timeout(120)
def test_pbt_on_several_processes_is_refused_in_one_line_before_anything_is_written(tmp_path, monkeypatch):
    from cli_harness import assert_one_line_error, in_this_process

    jax.devices()
    monkeypatch.setattr(jax, "process_count", lambda: 2)  # as under jax.distributed with two processes
    proc = in_this_process(*TINY, "--seeds", "4", "--pbt", "--out", "run", cwd=tmp_path)
    assert "--pbt trains a population in one process" in assert_one_line_error(proc)
    assert list(tmp_path.iterdir()) == []

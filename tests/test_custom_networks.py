"""A user's network and optimizer (``network=``, ``optimizer=``, ``--network``, ``--optimizer``): the
``my_nets.py`` of docs/networks.md as printed learns CartPole, a continuous-action network and a recurrent one
train, masks and grids keep working, and every mistake is one line."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxppo
from cli_harness import assert_ok, assert_one_line_error, cli, in_this_process
from envs_for_tests import TemptingBandit
from jaxppo import ConfigError, PPOConfig, PPOHParams
from utils import FULL_OPTIMIZATION

pytestmark = pytest.mark.timeout(300)
EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "networks.md"


@pytest.fixture(scope="module")
def my_nets(tmp_path_factory):
    """docs/networks.md's my_nets.py, written where a user keeps it and imported from there."""
    directory = tmp_path_factory.mktemp("user")
    code = re.search(r"<!-- readme-example: my-nets -->\s*```python\n(.*?)```", EXAMPLE.read_text(), re.S).group(1)
    (directory / "my_nets.py").write_text(code)
    sys.path.insert(0, str(directory))
    try:
        yield directory, importlib.import_module("my_nets")
    finally:
        sys.path.remove(str(directory))
        sys.modules.pop("my_nets", None)


def final_returns(config, seeds=2, hparams=None, **factories) -> np.ndarray:
    train = jax.vmap(jaxppo.make_train(config, **factories), in_axes=(0, None))
    result = jax.jit(train, compiler_options=FULL_OPTIMIZATION)(jax.random.split(jax.random.key(0), seeds),
                                                                 hparams or PPOHParams())  # fmt: skip
    return np.asarray(result.metrics["episode_return_last100"])[:, -1]


# ------------------------------------------------------------------ learning
def test_the_readme_residual_mlp_and_adamw_cosine_learn_cartpole(my_nets):
    _, nets = my_nets
    config = PPOConfig(env_id="CartPole-v1", total_timesteps=100_000, anneal_lr=False)
    returns = final_returns(config, network=nets.residual_mlp, optimizer=nets.adamw_cosine,
                            hparams=PPOHParams(learning_rate=1e-3))  # fmt: skip
    assert (returns > 150).all(), returns  # 287 and 326 measured; a random policy: about 22


def test_the_readme_gru_network_learns_cartpole(my_nets):
    _, nets = my_nets
    config = PPOConfig(env_id="CartPole-v1", total_timesteps=100_000)
    returns = final_returns(config, network=nets.gru_policy, hparams=PPOHParams(learning_rate=1e-3))
    assert returns.mean() > 70, returns  # 88 and 85 measured


class TwoTowers:
    """Separate actor and critic as two submodules of one module, for a Box action space."""

    @staticmethod
    def make(action_size):
        import flax.linen as nn

        class Towers(nn.Module):
            action_size: int

            @nn.compact
            def __call__(self, obs):
                actor = nn.Sequential([nn.Dense(64), nn.tanh, nn.Dense(64), nn.tanh, nn.Dense(self.action_size)])
                critic = nn.Sequential([nn.Dense(64), nn.tanh, nn.Dense(64), nn.tanh, nn.Dense(1)])
                return actor(obs), critic(obs)[..., 0]

        return Towers(action_size=action_size)


def test_a_custom_network_on_a_continuous_env_trains_with_jaxppos_log_std():
    config = PPOConfig(env_id="Pendulum-v1", total_timesteps=4 * 2048)
    trainer = jaxppo.make_trainer(config, network=TwoTowers.make)
    result = jax.jit(jaxppo.make_train(config, network=TwoTowers.make))(jax.random.key(1), PPOHParams())
    params = result.state.params
    assert set(params) == {"network", "log_std"} and params["log_std"].shape == (1,)
    assert int(result.state.diverged_at) == -1
    assert np.isfinite(np.asarray(result.metrics["policy_loss"])).all()
    assert trainer.policy.distribution(params, jnp.zeros((5, 3))).mean.shape == (5, 1)


# ------------------------------------------------------------------ the seam's promises
def test_masks_apply_to_a_custom_networks_logits():
    import flax.linen as nn

    class Tempted(nn.Module):
        action_size: int

        @nn.compact
        def __call__(self, obs):
            logits = jnp.broadcast_to(jnp.asarray([0.0, 0.0, 50.0]), (*obs.shape[:-1], 3))  # wants action 2
            return logits + 0.0 * nn.Dense(3)(obs), nn.Dense(1)(obs)

    trainer = jaxppo.make_trainer(PPOConfig(env_id="bandit", total_timesteps=512), TemptingBandit(),
                                  network=lambda action_size: Tempted(action_size))  # fmt: skip
    state = trainer.init(jax.random.key(0), PPOHParams())
    _, transitions = trainer.rollout(state, PPOHParams())
    assert not (np.asarray(transitions.action) == 2).any()  # the env's mask forbids it


def test_a_grid_over_the_learning_rate_compiles_once_with_a_custom_optimizer(my_nets):
    _, nets = my_nets
    config = PPOConfig(env_id="CartPole-v1", total_timesteps=2 * 512, anneal_lr=False)
    grid, _ = jaxppo.hparam_grid(learning_rate=[1e-3, 1e-2])
    train = jaxppo.make_train(config, network=nets.residual_mlp, optimizer=nets.adamw_cosine)
    both = jax.jit(jax.vmap(train, in_axes=(None, 0)))(jax.random.key(0), grid)
    one = jax.jit(train)(jax.random.key(0), PPOHParams(learning_rate=1e-2))
    np.testing.assert_allclose(both.metrics["policy_loss"][1], one.metrics["policy_loss"], rtol=1e-4, atol=1e-6)
    assert not np.allclose(both.metrics["policy_loss"][0], both.metrics["policy_loss"][1])


def test_the_default_optimizer_is_the_one_given_explicitly():
    from jaxppo.train import default_optimizer

    config = PPOConfig(env_id="CartPole-v1", total_timesteps=2 * 512)
    plain = jax.jit(jaxppo.make_train(config))(jax.random.key(0))
    explicit = jax.jit(jaxppo.make_train(config, optimizer=default_optimizer))(jax.random.key(0))
    for name, values in plain.metrics.items():
        np.testing.assert_array_equal(values, explicit.metrics[name], err_msg=name)


# ------------------------------------------------------------------ mistakes
def wrong_size(action_size):
    import flax.linen as nn

    class Wrong(nn.Module):
        @nn.compact
        def __call__(self, obs):
            return nn.Dense(action_size + 1)(obs), nn.Dense(1)(obs)

    return Wrong()


@pytest.mark.parametrize(
    ("factories", "message"),
    [
        ({"network": lambda action_size: "a module"}, "must return a flax.linen.Module"),
        ({"network": lambda: None}, r"network .*\(action_size=2\) failed"),
        ({"network": wrong_size}, r"action_params have shape \(1, 3\).*needs \(1, 2\) \(2 logits\)"),
        ({"optimizer": lambda hp: 3}, "must return an optax.GradientTransformation"),
    ],
)
def test_a_wrong_factory_is_a_one_line_config_error(factories, message):
    with pytest.raises(ConfigError, match=message):
        jaxppo.make_trainer(PPOConfig(env_id="CartPole-v1"), **factories)


def test_recurrent_with_a_network_is_refused():
    with pytest.raises(ConfigError, match="brings its own core"):
        jaxppo.make_trainer(PPOConfig(recurrent="gru"), network=wrong_size)


# ------------------------------------------------------------------ the command line
def test_network_and_optimizer_from_the_command_line_resume_evaluate_and_load(my_nets, tmp_path, monkeypatch):
    directory, _ = my_nets
    (tmp_path / "my_nets.py").write_text((directory / "my_nets.py").read_text())
    flags = ["--env", "CartPole-v1", "--seeds", "2", "--network", "my_nets:residual_mlp", "--optimizer",
             "my_nets:adamw_cosine", "--no-anneal-lr", "--learning-rate", "1e-3", "--no-progress"]  # fmt: skip
    assert_ok(cli(*flags, "--total-timesteps", 4 * 512, "--out", "run", cwd=tmp_path))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["network"] == "my_nets:residual_mlp" and config["optimizer"] == "my_nets:adamw_cosine"
    assert config["architecture"]["network"] == "ResidualMLP"
    longer = cli("--resume", "run", "--total-timesteps", 8 * 512, "--no-progress", cwd=tmp_path)
    assert_ok(longer)
    evaluated = cli("run", "--episodes", "2", module="jaxppo.evaluate", cwd=tmp_path)
    assert_ok(evaluated)
    other = in_this_process("--resume", "run", "--network", "my_nets:gru_policy", cwd=tmp_path)
    assert "network: 'my_nets:residual_mlp' in the run, 'my_nets:gru_policy' now" in assert_one_line_error(other)
    monkeypatch.chdir(tmp_path)
    policy = jaxppo.load_policy("run", seed=1)
    assert policy.predict(np.zeros(4, np.float32)) in (0, 1)


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("no_such_module:f", r"cannot import no_such_module \(ModuleNotFoundError"),
        ("bad_nets:missing", "bad_nets has no missing"),
        ("bad_nets", "write MODULE:FACTORY"),
        ("bad_nets:wrong", r"action_params have shape \(1, 3\)"),
    ],
)
def test_a_bad_network_flag_is_one_line_exit_2_and_writes_nothing(tmp_path, flag, message):
    (tmp_path / "bad_nets.py").write_text("from test_custom_networks import wrong_size as wrong\n")
    proc = in_this_process("--env", "CartPole-v1", "--network", flag, "--out", "run", cwd=tmp_path)
    assert re.search(message, assert_one_line_error(proc))
    assert not (tmp_path / "run").exists()


def test_train_many_takes_the_factories_too(my_nets):
    _, nets = my_nets
    config = PPOConfig(env_id="CartPole-v1", total_timesteps=2 * 512, anneal_lr=False)
    result = jaxppo.train_many(config, jax.random.split(jax.random.key(0), 2), network=nets.residual_mlp,
                               optimizer=nets.adamw_cosine)  # fmt: skip
    assert result.metrics["policy_loss"].shape == (2, 2)
    assert "network" in result.state.params and np.isfinite(np.asarray(result.metrics["policy_loss"])).all()

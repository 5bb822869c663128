"""Policy architectures: the CNN encoder (im2col convolutions), the encoder chosen per observation
leaf, dict observations encoded key by key, the shared actor-critic trunk, their one-line
configuration errors, vmapped seeds, exact chunked runs and checkpoints, and a MinAtar learning test."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxppo
from jaxppo import rundir, train
from jaxppo.envs import ObsLeaf, make_env
from jaxppo.factories import run_facts
from jaxppo.loading import abstract_states
from jaxppo.networks import Encoder, LeafEncoder, conv_patches
from jaxppo.policy import SharedTrunkActorCritic, make_policy, observation_encoding
from jaxppo.settings import RunSettings
from utils import tree_equal

# Breakout-MinAtar ([10, 10, 4] observations), 2 iterations of 4 envs x 32 steps.
TINY_CNN = jaxppo.PPOConfig(env_id="Breakout-MinAtar", encoder="cnn", total_timesteps=2 * 128, num_envs=4,
                            num_steps=32, num_minibatches=2, update_epochs=2)  # fmt: skip
DEFAULTS = jaxppo.PPOHParams().resolve("discrete")


def _gram(kernel) -> np.ndarray:
    w = np.asarray(kernel, np.float64)
    return w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T


# ------------------------------------------------------------------ the convolution
@pytest.mark.parametrize(
    "channels, kernels, strides, features",
    [
        ((16,), (3,), (1,), 8 * 8 * 16),  # the MinAtar paper's layer
        ((16, 32), (3, 3), (1, 1), 6 * 6 * 32),
        ((8,), (4,), (2,), 4 * 4 * 8),  # (10 - 4) // 2 + 1 = 4
        ((8, 4), (5, 3), (2, 1), 1 * 1 * 4),  # 10 -> 3 -> 1
        ((6,), (10,), (1,), 6),  # the kernel covers the whole input
    ],
)
def test_cnn_features_have_the_shape_of_valid_convolutions(channels, kernels, strides, features):
    encoder = Encoder(LeafEncoder(3, channels, kernels, strides))
    params = jax.eval_shape(encoder.init, jax.random.key(0), jnp.zeros((1, 10, 10, 4)))
    obs = jnp.zeros((5, 3, 10, 10, 4))  # any leading batch dims
    assert jax.eval_shape(encoder.apply, params, obs).shape == (5, 3, features)
    assert params["params"]["conv_0"]["kernel"].shape == (kernels[0] ** 2 * 4, channels[0])


@pytest.mark.parametrize("kernel, stride", [(3, 1), (4, 2)])
def test_im2col_convolution_equals_flax_conv(kernel, stride):
    x = jax.random.normal(jax.random.key(0), (2, 10, 9, 3))
    w = jax.random.normal(jax.random.key(1), (kernel, kernel, 3, 5))
    conv = nn.Conv(5, (kernel, kernel), strides=(stride, stride), padding="VALID", use_bias=False)
    expected = jax.jit(conv.apply)({"params": {"kernel": w}}, x)
    got = jax.jit(lambda x, w: conv_patches(x, kernel, stride) @ w.reshape(-1, 5))(x, w)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def _encoder_init(encoding: LeafEncoder):
    return jax.jit(lambda key: Encoder(encoding).init(key, jnp.zeros((1, 10, 10, 4))))


def test_cnn_kernels_are_orthogonal_sqrt2_with_zero_bias_and_drawn_in_one_loop():
    encoding = LeafEncoder(3, (16, 32), (3, 3), (1, 1))
    params = _encoder_init(encoding)(jax.random.key(0))["params"]
    for name, (rows, cols) in {"conv_0": (36, 16), "conv_1": (144, 32)}.items():
        kernel = params[name]["kernel"]
        assert kernel.shape == (rows, cols) and not np.any(params[name]["bias"])
        np.testing.assert_allclose(_gram(kernel), 2.0 * np.eye(cols), atol=1e-4)
    # One draw and one loop for every layer (XLA:CPU compiles each loop apart; see xla_cpu.orthogonal_kernels).
    loops = lambda e: _encoder_init(e).lower(jax.random.key(0)).as_text().count("stablehlo.while")
    assert loops(encoding) == loops(LeafEncoder(3, (16,), (3,), (1,)))


# ------------------------------------------------------------------ which encoder per leaf
@pytest.mark.parametrize(
    "encoder, shape, convolves",
    [
        ("auto", (10, 10, 4), True),  # MinAtar
        ("auto", (5, 5, 1), True),
        ("auto", (4, 10, 3), False),  # too small to be an image
        ("auto", (1, 6, 1), False),
        ("auto", (4,), False),
        ("auto", (84, 84), False),  # no channel axis
        ("cnn", (4, 10, 3), True),
        ("mlp", (10, 10, 4), False),
    ],
)
def test_the_encoder_is_chosen_per_leaf(encoder, shape, convolves):
    config = jaxppo.PPOConfig(encoder=encoder, cnn_kernels=(2,))
    encoding = observation_encoding(config, ObsLeaf(shape))
    assert encoding.convolves == convolves and encoding.rank == len(shape)
    if convolves:
        assert (encoding.channels, encoding.kernels, encoding.strides) == ((16,), (2,), (1,))


def test_auto_gives_cartpole_the_mlp_and_minatar_the_cnn():
    cartpole = make_policy(jaxppo.PPOConfig().resolve("discrete"), make_env("CartPole-v1"))
    assert not cartpole.actor.encoding.convolves and cartpole.actor.encoding.rank == 1
    breakout = make_policy(
        jaxppo.PPOConfig(env_id="Breakout-MinAtar").resolve("discrete"), make_env("Breakout-MinAtar")
    )
    params = jax.eval_shape(breakout.init, jax.random.split(jax.random.key(0), 2))
    for network in ("actor", "critic"):
        assert params[network]["params"]["Encoder_0"]["conv_0"]["kernel"].shape == (36, 16)
        assert params[network]["params"]["MLP_0"]["Dense_0"]["kernel"].shape == (8 * 8 * 16, 64)


def test_dict_observations_get_an_encoder_per_key():
    spec = make_env("CartPole-v1")._replace(obs_leaves={"image": ObsLeaf((10, 10, 3)), "vector": ObsLeaf((5,))})
    policy = make_policy(jaxppo.PPOConfig().resolve("discrete"), spec)
    assert dict(policy.actor.encoding) == {"image": LeafEncoder(3, (16,), (3,), (1,)), "vector": LeafEncoder(1)}
    params = jax.jit(policy.init)(jax.random.split(jax.random.key(0), 2))
    actor = params["actor"]["params"]
    assert set(actor["Encoder_0"]) == {"image_conv_0"}  # the vector leaf is flattened, without parameters
    assert actor["Encoder_0"]["image_conv_0"]["kernel"].shape == (27, 16)
    assert actor["MLP_0"]["Dense_0"]["kernel"].shape == (8 * 8 * 16 + 5, 64)  # the features concatenated
    obs = {"image": jax.random.uniform(jax.random.key(1), (7, 10, 10, 3)), "vector": jnp.zeros((7, 5))}
    value_of = jax.jit(policy.value)
    value = value_of(params, obs)
    assert jax.eval_shape(policy.distribution, params, obs).logits.shape == (7, 2) and value.shape == (7,)
    for key in obs:  # both leaves reach the value
        changed = {**obs, key: obs[key] + 1.0}
        assert not np.allclose(value_of(params, changed), value), key
    mlp = make_policy(jaxppo.PPOConfig(encoder="mlp").resolve("discrete"), spec)
    mlp_params = jax.eval_shape(mlp.actor.init, jax.random.key(0), obs)
    assert mlp_params["params"]["MLP_0"]["Dense_0"]["kernel"].shape == (305, 64)


# ------------------------------------------------------------------ the shared trunk
def test_a_shared_trunk_has_one_encoder_and_mlp_and_two_heads():
    config = TINY_CNN.replace(shared_trunk=True).resolve("discrete")
    policy = make_policy(config, make_env("Breakout-MinAtar"))
    assert isinstance(policy, SharedTrunkActorCritic)
    params = jax.jit(policy.init)(jax.random.split(jax.random.key(0), 2))
    assert list(params) == ["trunk"]
    trunk = params["trunk"]["params"]
    assert set(trunk) == {"Encoder_0", "MLP_0"} and set(trunk["MLP_0"]) == {f"Dense_{i}" for i in range(4)}
    policy_head, value_head = trunk["MLP_0"]["Dense_2"]["kernel"], trunk["MLP_0"]["Dense_3"]["kernel"]
    assert policy_head.shape == (64, 3) and value_head.shape == (64, 1)
    np.testing.assert_allclose(_gram(policy_head), 0.01**2 * np.eye(3), atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(value_head), 1.0, atol=1e-5)
    obs = jnp.zeros((2, 5, 10, 10, 4))
    assert jax.eval_shape(policy.distribution, params, obs).logits.shape == (2, 5, 3)
    assert jax.eval_shape(policy.value, params, obs).shape == (2, 5)


def test_a_shared_trunk_for_continuous_actions_keeps_its_log_std():
    config = jaxppo.PPOConfig(env_id="Pendulum-v1", shared_trunk=True).resolve("continuous")
    policy = make_policy(config, make_env("Pendulum-v1"))
    trunk = jax.eval_shape(policy.init, jax.random.split(jax.random.key(0), 2))["trunk"]["params"]
    assert set(trunk) == {"MLP_0", "log_std"} and trunk["log_std"].shape == (1,)


def _loss_gradients(config: jaxppo.PPOConfig, vf_coefs: tuple[float, ...]) -> list[dict]:
    """The PPO loss's gradients at the initial parameters on one random minibatch, per ``vf_coef``."""
    trainer = jaxppo.make_trainer(config)
    keys = jax.random.split(jax.random.key(0), 6)
    size = 16
    batch = train.Batch(
        obs=(jax.random.uniform(keys[0], (size, 10, 10, 4)) < 0.2).astype(jnp.float32),
        action=jax.random.randint(keys[1], (size,), 0, 3),
        log_prob=jnp.full((size,), -np.log(3.0), jnp.float32),
        advantages=jax.random.normal(keys[2], (size,)),
        returns=jax.random.normal(keys[3], (size,)),
        values=jnp.zeros((size,)),
    )

    @jax.jit
    def gradients(vf_coef):
        hp = trainer.resolve(jaxppo.PPOHParams(vf_coef=vf_coef))
        params = trainer.policy.init(keys[4:6])
        return jax.grad(lambda p: train.loss(trainer, hp, p, batch)[0])(params)

    return [gradients(jnp.float32(c)) for c in vf_coefs]


def test_vf_coef_trains_the_shared_trunk_and_only_the_critic_of_separate_networks():
    shared = [g["trunk"]["params"] for g in _loss_gradients(TINY_CNN.replace(shared_trunk=True), (0.5, 1.0))]
    for layer in (lambda g: g["Encoder_0"]["conv_0"], lambda g: g["MLP_0"]["Dense_0"]):
        for half, full in zip(*(jax.tree.leaves(layer(g)) for g in shared), strict=True):
            assert not np.allclose(half, full)  # the value loss reaches the trunk
    policy_head = [g["MLP_0"]["Dense_2"]["kernel"] for g in shared]
    np.testing.assert_array_equal(policy_head[0], policy_head[1])  # and never the policy head
    separate = _loss_gradients(TINY_CNN, (0.5, 1.0))
    assert tree_equal(separate[0]["actor"], separate[1]["actor"])
    critic = [jax.tree.leaves(g["critic"]) for g in separate]
    for half, full in zip(*critic, strict=True):
        np.testing.assert_allclose(full, 2 * half, rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------ bad settings
@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(encoder="conv"), "encoder must be one of"),
        (dict(cnn_channels=()), "cnn_channels must be positive integers"),
        (dict(cnn_kernels=(3, 0)), "cnn_kernels must be positive integers"),
        (dict(cnn_strides=(-1,)), "cnn_strides must be positive integers"),
        (dict(cnn_channels=(16.5,)), "cnn_channels must be positive integers"),
        (dict(cnn_channels=16), "cnn_channels must be a sequence"),
        (dict(cnn_channels=(16, 32)), "equal lengths"),
        (dict(shared_trunk="yes"), "shared_trunk must be true or false"),
    ],
)
def test_bad_architecture_settings_are_one_line_config_errors(changes, message):
    with pytest.raises(jaxppo.ConfigError, match=message) as error:
        jaxppo.PPOConfig(**changes).validate()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "config, names",
    [
        (jaxppo.PPOConfig(env_id="CartPole-v1", encoder="cnn"), ["encoder='cnn'", "(4,)"]),
        (jaxppo.PPOConfig(env_id="Breakout-MinAtar", cnn_kernels=(11,)), ["(10, 10, 4)", "11x11", "10x10"]),
        (jaxppo.PPOConfig(env_id="Breakout-MinAtar", cnn_channels=(8, 8), cnn_kernels=(3, 5), cnn_strides=(2, 1)),
         ["(10, 10, 4)", "layer 2", "5x5", "4x4"]),
    ],
)  # fmt: skip
def test_an_encoder_that_does_not_fit_the_observations_is_a_one_line_error(config, names):
    with pytest.raises(jaxppo.ConfigError) as error:
        jaxppo.make_trainer(config)
    message = str(error.value)
    assert "\n" not in message and all(name in message for name in names), message


# ------------------------------------------------------------------ seeds, chunks, checkpoints
@pytest.fixture(scope="module")
def tiny_cnn_runs():
    """Two seeds of the tiny CNN run, vmapped, and each alone."""
    keys = jax.random.split(jax.random.key(3), 2)
    train_fn = jaxppo.make_train(TINY_CNN)
    vmapped = jax.jit(jax.vmap(train_fn, in_axes=(0, None)))(keys, DEFAULTS)
    alone = [jax.jit(train_fn)(key, DEFAULTS) for key in keys]
    return keys, vmapped, alone


def test_vmapped_seeds_equal_separate_runs_with_the_cnn(tiny_cnn_runs):
    _, vmapped, alone = tiny_cnn_runs
    for s, result in enumerate(alone):
        for got, expected in zip(jax.tree.leaves(jax.tree.map(lambda x: x[s], vmapped.state.params)),
                                 jax.tree.leaves(result.state.params), strict=True):  # fmt: skip
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            vmapped.metrics["policy_loss"][s], result.metrics["policy_loss"], rtol=1e-4, atol=1e-6
        )
    assert not np.allclose(vmapped.metrics["policy_loss"][0], vmapped.metrics["policy_loss"][1])


@pytest.mark.parametrize(
    "config",
    [TINY_CNN, TINY_CNN.replace(shared_trunk=True), TINY_CNN.replace(encoder="mlp", shared_trunk=True)],
    ids=["cnn", "cnn-shared-trunk", "mlp-shared-trunk"],
)
def test_a_run_continued_from_its_checkpoint_is_exact_with_every_architecture(config, tiny_cnn_runs, tmp_path):
    keys, _, alone = tiny_cnn_runs
    trainer = jaxppo.make_trainer(config)
    run = jax.jit(trainer.run, static_argnums=2)
    first = run(jax.jit(trainer.init)(keys[0], DEFAULTS), DEFAULTS, 1)
    # Saved after the first iteration, restored into the run's abstract states, continued.
    settings = RunSettings(config=config, hparams={}, grid={}, seeds=1, seed=0)
    states = jax.tree.map(lambda x: x[None, None], first.state)  # [G, S] = [1, 1]
    rundir.save_checkpoint(tmp_path, 1, states, {k: np.asarray(v)[None, None] for k, v in first.metrics.items()})
    facts = run_facts(settings, trainer)
    restored = rundir.restore_checkpoint(tmp_path, abstract_states(facts), facts.metric_dtypes)
    assert restored.iteration == 1 and tree_equal(restored.states, states)
    continued = run(jax.tree.map(lambda x: x[0, 0], restored.states), DEFAULTS, 1)
    assert tree_equal(continued, run(first.state, DEFAULTS, 1))
    if config == TINY_CNN:  # two calls of one iteration are the scan of two
        assert tree_equal(continued.state, alone[0].state)
        both = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first.metrics, continued.metrics)
        assert tree_equal(both, alone[0].metrics)


def test_the_stored_settings_record_the_architecture():
    config = jaxppo.PPOConfig(env_id="Breakout-MinAtar", encoder="cnn", cnn_channels=(16, 32), cnn_kernels=(3, 3),
                              cnn_strides=(1, 2), shared_trunk=True)  # fmt: skip
    settings = RunSettings(config=config, hparams={}, grid={}, seeds=2, seed=0)
    stored = settings.to_json()["config"]
    assert stored["encoder"] == "cnn" and stored["shared_trunk"] is True
    assert (stored["cnn_channels"], stored["cnn_kernels"], stored["cnn_strides"]) == ([16, 32], [3, 3], [1, 2])
    assert RunSettings.from_json(settings.to_json()) == settings
    other = RunSettings(config=config.replace(encoder="auto", shared_trunk=False), hparams={}, grid={}, seeds=2, seed=0)
    assert [d.split(":")[0] for d in settings.differences(other)] == ["config.encoder", "config.shared_trunk"]

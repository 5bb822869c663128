"""``export_policy``: one trained agent's deterministic policy as a serialised ``jax.export``
function, which runs with jax alone (no jaxppo, flax or env); ``python -m jaxppo.export`` is its
command.

The function is ``observation -> action`` on a batch ``[N, *obs_shape]`` (``N`` is symbolic: any
batch size; one observation is ``obs[None]``), or ``(carry, observation) -> (carry, action)`` for a
recurrent policy, whose carry (``{name: float32 [N, size]}``, zeros at an episode's start) the
caller passes along. An env with action masks takes the mask as a last argument,
``bool [N, num_actions]``. The agent's parameters and observation statistics are constants of the
function: it normalises observations as the run did, and returns what
``load_policy(RUN_DIR).predict`` returns for the same observations (continuous actions clipped to
the env's bounds). Lowered for the CPU and, where this jax can lower for it, CUDA GPUs.

Load it with ``jax.export.deserialize(open(path, "rb").read())`` and call ``exported.call(...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from jaxppo.config import ConfigError, first_line

SUFFIX = ".jaxexport"
PLATFORMS = ("cpu", "cuda")  # exported for both where this jax lowers for both


class ExportedPolicy(NamedTuple):
    """What ``export_policy`` made: the serialised function and what it takes."""

    data: bytes  # jax.export's serialisation
    platforms: tuple[str, ...]
    recurrent: bool
    masked: bool  # the function takes an action mask as its last argument
    signature: str  # in words, for the command's report


def check_export_path(out, flag: str = "out") -> Path:
    """``out`` if a ``.jaxexport`` file can be written there, else ``ConfigError`` naming ``flag``."""
    from jaxppo.rundir import writable_file

    return writable_file(out, flag, (SUFFIX,), f"policy{SUFFIX}")


def export_policy(run_dir, out=None, seed: int = 0, grid_point: int = 0,
                  platforms: tuple[str, ...] | None = None) -> ExportedPolicy:  # fmt: skip
    """Agent (``grid_point``, ``seed``) of a run as a serialised ``jax.export`` function (see the
    module's text), written to ``out`` (a ``.jaxexport`` path) when given. ``platforms``: the
    platforms to lower for (default: ``("cpu", "cuda")``, or the CPU alone where this jax cannot
    lower for CUDA). ``ConfigError`` for a bad run, index or path."""
    import jax
    from jax import export

    from jaxppo.evaluation import make_act
    from jaxppo.loading import check_agent, load_agent
    from jaxppo.rundir import atomic_write_bytes

    check_agent(run_dir, seed, grid_point)
    if out is not None:
        out = check_export_path(out)
    run, agent = load_agent(run_dir, seed, grid_point)
    trainer = run.trainer
    spec, policy = trainer.spec, trainer.policy
    act = make_act(trainer, deterministic=True)

    def step(obs, mask=None, carry=None):
        # the mode of the distribution: the key is never read
        return act(agent.params, agent.obs_stats, obs, jax.random.key(0), mask, carry)

    (batch,) = export.symbolic_shape("N")
    obs = jax.tree.map(lambda shape: jax.ShapeDtypeStruct((batch, *shape), "float32"), spec.obs_shape,
                       is_leaf=lambda x: isinstance(x, tuple))  # fmt: skip
    mask = jax.ShapeDtypeStruct((batch, spec.action_size), "bool")
    masked = spec.has_action_mask
    if policy.recurrent:
        carry = jax.tree.map(lambda c: jax.ShapeDtypeStruct((batch, *c.shape[1:]), c.dtype),
                             jax.eval_shape(lambda: policy.initial_carry(1)))  # fmt: skip

        def function(carry, obs, *mask):
            action, carry = step(obs, *(mask or (None,)), carry)
            return carry, action

        args = (carry, obs, mask) if masked else (carry, obs)
    else:

        def function(obs, *mask):
            return step(obs, *mask)

        args = (obs, mask) if masked else (obs,)
    chosen = tuple(platforms) if platforms else PLATFORMS
    try:
        exported = export.export(jax.jit(function), platforms=chosen)(*args)
    except Exception as error:  # a platform this jax cannot lower for
        if platforms:
            raise ConfigError(f"cannot export for platforms {', '.join(chosen)}: {first_line(error)}") from None
        chosen = ("cpu",)
        exported = export.export(jax.jit(function), platforms=chosen)(*args)
    data = bytes(exported.serialize())
    words = _signature(spec, policy, masked)
    if out is not None:
        atomic_write_bytes(out, data)
    return ExportedPolicy(data, chosen, policy.recurrent, masked, words)


def _batch(dtype: str, shape) -> str:
    return f"{dtype} [{', '.join(['N', *map(str, shape)])}]"


def _signature(spec, policy, masked: bool) -> str:
    import jax

    obs = spec.obs_shape
    if isinstance(obs, dict):
        obs_text = "{" + ", ".join(f"{k!r}: {_batch('float32', v)}" for k, v in obs.items()) + "}"
    else:
        obs_text = _batch("float32", obs)
    if spec.action_kind == "continuous":
        action = _batch("float32", spec.action_shape)
    else:
        action = _batch("int32", () if spec.action_nvec is None else (len(spec.action_nvec),))
    mask = f", action_mask bool [N, {spec.action_size}]" if masked else ""
    if not policy.recurrent:
        return f"observation {obs_text}{mask} -> action {action}"
    carry = jax.eval_shape(lambda: policy.initial_carry(1))
    described = jax.tree.map(lambda v: _batch(str(v.dtype), v.shape[1:]), carry)
    carry_text = ("{" + ", ".join(f"{k!r}: {v}" for k, v in described.items()) + "}"
                  if isinstance(described, dict) else str(described))  # fmt: skip
    return f"(carry {carry_text}, observation {obs_text}{mask}) -> (carry, action {action}); zeros start an episode"

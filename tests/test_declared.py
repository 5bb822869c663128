"""One declaration per setting (``jaxppo.declared``): every field of the five declarations has
exactly its flag, every flag sets a declared field, a config file and ``config.json`` take every
run-deciding field by its name, and the kinds coerce and check as declared."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jaxppo.config import ConfigError, PPOConfig, PPOHParams
from jaxppo.declared import Setting, check, coerce, declared, flag_name
from jaxppo.run import DECLARATIONS, Launch, build_parser
from jaxppo.settings import FILE_SETTINGS, RunOptions, RunSettings, settings_as_args, settings_from_args

CONTAINERS = {(RunSettings, "config"), (RunSettings, "hparams")}  # they hold PPOConfig's and PPOHParams' fields


def test_the_command_declares_every_settings_class():
    assert {cls for cls, _ in DECLARATIONS} == {PPOConfig, PPOHParams, RunSettings, RunOptions, Launch}


@pytest.mark.parametrize("cls", [cls for cls, _ in DECLARATIONS], ids=lambda cls: cls.__name__)
def test_every_field_is_declared_and_has_its_flag(cls):
    flags: dict[str, set] = {}
    for action in build_parser()._actions:
        flags.setdefault(action.dest, set()).update(action.option_strings)
    undeclared = [f.name for f in dataclasses.fields(cls) if (cls, f.name) not in CONTAINERS
                  and f.name not in declared(cls)]  # fmt: skip
    assert not undeclared, f"{cls.__name__} fields without a setting(...) declaration: {undeclared}"
    for name, (declaration, _) in declared(cls).items():
        assert flag_name(name, declaration) in flags.get(name, ()), f"{cls.__name__}.{name} has no flag"


def test_every_flag_sets_a_declared_field():
    fields = {name for cls, _ in DECLARATIONS for name in declared(cls)}
    stray = [action.option_strings for action in build_parser()._actions
             if action.option_strings and not isinstance(action, argparse._HelpAction) and action.dest not in fields]  # fmt: skip
    assert not stray, f"flags that set no declared field: {stray}"


def test_no_two_declarations_share_a_name_or_a_flag():
    names = [name for cls, _ in DECLARATIONS for name in declared(cls)]
    assert len(names) == len(set(names))
    flags = [flag for action in build_parser()._actions for flag in action.option_strings]
    assert len(flags) == len(set(flags))


def _non_default_values() -> dict:
    """A value other than the default for every run-deciding setting a config file may hold."""
    values = {}
    for name, (declaration, default) in FILE_SETTINGS.items():
        if declaration.kind == "table":
            continue
        if declaration.choices:
            values[name] = next(c for c in declaration.choices if c != default)
        else:
            values[name] = {"int": 3, "float": 0.4, "bool": not default if default is not None else False,
                            "str": "pkg.module:factory", "ints": (8, 8), "strings": ("learning_rate=1e-4:1e-3:log",)
                            }[declaration.kind]  # fmt: skip
    values.update(env_id="Acrobot-v1", hidden_sizes=(16, 16), cnn_channels=(4,), cnn_kernels=(2,), cnn_strides=(1,),
                  total_timesteps=4096, num_envs=4, num_steps=32, num_minibatches=2, adv_std_ddof=1, seeds=4,
                  pbt_interval=3, pbt_quantile=0.25, gamma=0.9, gae_lambda=0.9, learning_rate=3e-4)  # fmt: skip
    values.pop("vf_coef")  # the grid sweeps it
    return values


def test_config_json_round_trips_every_declared_setting():
    values = _non_default_values()
    settings = settings_from_args({**values, "env_kwargs": ["max_steps_in_episode=50"],
                                   "grid": ["vf_coef=0.1,0.3"]})  # fmt: skip
    again = RunSettings.from_json(settings.to_json())
    assert again == settings and not settings.differences(again)
    assert settings_from_args({}, settings_as_args(settings)) == settings
    for name, value in values.items():  # each setting arrived where its declaration says
        stored = settings.hparams.get(name) if name in declared(PPOHParams) else getattr(
            settings.config if name in declared(PPOConfig) else settings, name)  # fmt: skip
        assert stored == value, name
    assert settings.config.env_kwargs == (("max_steps_in_episode", 50),)


def _other(declaration: Setting, value):
    """A different value of the same kind."""
    if declaration.kind == "table":
        return {"other": [1.0]} if isinstance(value, dict) else (("other", 1),)
    if value is None:
        return {"int": 2, "float": 0.5, "bool": True, "str": "x"}[declaration.kind]
    return {"int": lambda: value + 1, "float": lambda: value * 0.5, "bool": lambda: not value,
            "str": lambda: value + "x", "ints": lambda: (*value, 1), "strings": lambda: (*value, "x")
            }[declaration.kind]()  # fmt: skip


@pytest.mark.parametrize("name", sorted(FILE_SETTINGS))
def test_a_resume_compares_every_declared_setting(name):
    settings = settings_from_args(_non_default_values())
    declaration = FILE_SETTINGS[name][0]
    if name in declared(PPOConfig):
        changed = dataclasses.replace(settings, config=settings.config.replace(
            **{name: _other(declaration, getattr(settings.config, name))}))  # fmt: skip
    elif name in declared(PPOHParams):
        changed = dataclasses.replace(settings, hparams={**settings.hparams, name: _other(declaration,
                                                                                         settings.hparams.get(name))})
    else:
        changed = dataclasses.replace(settings, **{name: _other(declaration, getattr(settings, name))})
    differences = settings.differences(changed)
    assert len(differences) == 1 and name in differences[0], differences


@given(st.integers(min_value=-10**9, max_value=10**9))
def test_an_int_setting_takes_its_text_and_its_file_value_alike(value):
    declaration = Setting("int", low=None)
    assert coerce("n", declaration, str(value)) == coerce("n", declaration, value) == value
    assert coerce("n", declaration, f"{value}.0") == value


@pytest.mark.parametrize("kind, given_value", [("int", "1.5"), ("int", True), ("float", "fast"), ("bool", "yes"),
                                               ("ints", "a,b"), ("str", 3), ("strings", [1])])  # fmt: skip
def test_a_value_of_the_wrong_kind_is_a_one_line_config_error(kind, given_value):
    with pytest.raises(ConfigError, match=r"^setting x must be .*, got ") as caught:
        coerce("x", Setting(kind), given_value)
    assert "\n" not in str(caught.value)


def test_checks_follow_the_declaration():
    check("n", Setting("int", low=1), 1)
    with pytest.raises(ConfigError, match="n must be a positive integer, got 0"):
        check("n", Setting("int", low=1), 0)
    with pytest.raises(ConfigError, match="n must be zero or positive"):
        check("n", Setting("int", low=0), -1)
    with pytest.raises(ConfigError, match=r"c must be one of \('a', 'b'\)"):
        check("c", Setting("str", choices=("a", "b")), "z")
    with pytest.raises(ConfigError, match="f must be a number"):
        check("f", Setting("float", low=0), "nan")
    with pytest.raises(ConfigError, match="zero or positive"):
        check("f", Setting("float", low=0), float("nan"))
    assert coerce("t", Setting("float", nullable=True), "none") is None


def test_the_command_line_checks_its_own_settings_by_their_flags():
    with pytest.raises(ConfigError, match="--checkpoint-every must be a positive integer, got 0"):
        RunOptions(checkpoint_every=0)
    with pytest.raises(ConfigError, match="--host-devices must be a positive integer, got 0"):
        Launch(host_devices=0)
    with pytest.raises(ConfigError, match="--seeds must be a positive integer, got 0"):
        settings_from_args({"seeds": 0})

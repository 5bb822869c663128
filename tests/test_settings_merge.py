"""The merge of a stored run, a config file and flags into ``RunSettings`` (no training)."""

from __future__ import annotations

import pytest

from jaxppo.config import ConfigError
from jaxppo.settings import Source, settings_as_args, settings_from_args

SMALL = {"env_id": "CartPole-v1", "total_timesteps": 2048, "num_envs": 4, "num_steps": 128}


def file_source(values: dict) -> Source:
    return Source("config file run.toml", values)


@pytest.mark.parametrize(
    ("sources", "flags", "must_name"),
    [
        ([], {"grid": ["learning_rate=1e-3"], "learning_rate": 1e-4}, ["--grid learning_rate=0.001", "--learning-rate"]),
        ([file_source({"learning_rate": 1e-3, "grid": {"learning_rate": [1e-3, 3e-3]}})], {},
         ["learning_rate = 0.001 in config file run.toml", "[grid] learning_rate in config file run.toml"]),
        ([file_source({"grid": {"clip_coef": [0.1, 0.2]}})], {"clip_coef": 0.3},
         ["--clip-coef 0.3", "[grid] clip_coef in config file run.toml"]),
        ([file_source({"clip_coef": 0.1})], {"grid": ["clip_coef=0.1,0.2"]},
         ["clip_coef = 0.1 in config file run.toml", "--grid clip_coef=0.1,0.2"]),
    ],
    ids=["grid_and_flag", "file_field_and_file_grid", "file_grid_and_flag", "file_field_and_grid_flag"],
)  # fmt: skip
def test_a_hyperparameter_fixed_and_swept_is_refused_naming_both(sources, flags, must_name):
    with pytest.raises(ConfigError) as error:
        settings_from_args({**SMALL, **flags}, sources=sources)
    message = str(error.value)
    assert "\n" not in message
    for text in must_name:
        assert text in message, message


def test_resume_with_a_flag_fixing_a_swept_hyperparameter_is_refused():
    stored = settings_from_args({**SMALL, "grid": ["learning_rate=1e-3,3e-3"]})
    run = Source("the run in runs/x", settings_as_args(stored))
    with pytest.raises(ConfigError, match=r"--learning-rate 0.1.*\[grid\] learning_rate in the run in runs/x"):
        settings_from_args({"learning_rate": 0.1}, sources=[run])
    assert settings_from_args({"grid": ["learning_rate=1e-3,3e-3"]}, sources=[run]) == stored  # repeating it is fine


def test_a_file_grid_and_a_flag_grid_merge_field_by_field():
    settings = settings_from_args(
        {**SMALL, "grid": ["learning_rate=1e-3,3e-3", "clip_coef=0.3"]},
        sources=[file_source({"grid": {"clip_coef": [0.1, 0.2], "ent_coef": [0.0, 0.01]}})],
    )
    assert settings.grid == {"clip_coef": [0.3], "ent_coef": [0.0, 0.01], "learning_rate": [1e-3, 3e-3]}


def test_a_flag_overrides_the_file_value_of_the_same_kind():
    settings = settings_from_args({**SMALL, "learning_rate": 2e-3}, sources=[file_source({"learning_rate": 1e-3})])
    assert settings.hparams == {"learning_rate": 2e-3}

"""Generated documentation matches the code: docs/cli.md's flag reference is what ``jaxppo.run``
renders, and every PPOConfig and PPOHParams field has a flag."""

import dataclasses
import re
from pathlib import Path

from jaxppo.config import PPOConfig, PPOHParams
from jaxppo.run import FLAGS_BEGIN, FLAGS_END, build_parser, flag_reference

ROOT = Path(__file__).resolve().parents[1]
REGENERATE_FLAGS = "python -c \"from jaxppo.run import write_flag_reference; write_flag_reference('docs/cli.md')\""


def _block(text: str, begin: str, end: str) -> str:
    match = re.search(re.escape(begin) + r"\n(.*?)" + re.escape(end), text, re.S)
    assert match, f"no {begin} ... {end} block"
    return match.group(1)


def test_the_flag_reference_in_docs_cli_is_what_the_parser_renders():
    written = _block((ROOT / "docs" / "cli.md").read_text(), FLAGS_BEGIN, FLAGS_END)
    assert written == flag_reference(), f"docs/cli.md's flag reference is stale; regenerate it: {REGENERATE_FLAGS}"


def test_every_config_and_hparam_field_has_a_flag():
    flags = {flag for action in build_parser()._actions for flag in action.option_strings}
    special = {"env_id": "--env", "env_kwargs": "--env-kwarg"}
    fields = [f.name for f in dataclasses.fields(PPOConfig)] + [f.name for f in dataclasses.fields(PPOHParams)]
    missing = [name for name in fields if special.get(name, "--" + name.replace("_", "-")) not in flags]
    assert not missing, f"fields without a flag: {missing}"


def test_the_flag_reference_lists_every_flag():
    reference = flag_reference()
    for action in build_parser()._actions:
        for flag in action.option_strings:
            assert flag in ("-h", "--help") or f"`{flag}`" in reference, flag

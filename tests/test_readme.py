"""The README's worked custom-environment example runs as printed and learns the corridor."""

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _example(name: str) -> str:
    match = re.search(rf"<!-- readme-example: {name} -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert match, f"README example {name!r} not found"
    return match.group(1)


@pytest.mark.timeout(300)
def test_custom_env_example_learns_the_shortest_path(capsys):
    namespace: dict = {}
    exec(compile(_example("custom-env"), "README.md", "exec"), namespace)
    lengths = np.asarray(namespace["result"].metrics["episode_length"])
    assert lengths[-1] <= 6.0, lengths  # the shortest path is 5 steps; a random walk takes about 15
    assert capsys.readouterr().out.strip()

"""Generated documentation matches the code: docs/cli.md's flag reference is what ``jaxppo.run``
renders (tests/test_declared.py checks that every declared setting has its flag)."""

import re
from pathlib import Path

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


def test_the_flag_reference_lists_every_flag():
    reference = flag_reference()
    for action in build_parser()._actions:
        for flag in action.option_strings:
            assert flag in ("-h", "--help") or f"`{flag}`" in reference, flag


def _collect():
    """experiments/collect.py as a module (it assembles from experiments/results/, no run directory needed)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("collect", ROOT / "experiments" / "collect.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REGENERATE_RESULTS = "python experiments/collect.py (with no run directories it rewrites from experiments/results/)"


def test_the_results_tables_are_generated_from_the_fragments():
    collect = _collect()
    results = ROOT / "experiments" / "results"
    for path in (ROOT / "README.md", ROOT / "docs" / "results.md"):
        written = _block(path.read_text(), collect.RESULTS_BEGIN, collect.GENERATED_END)
        assert written == collect.generated_results(path.name, results), (
            f"{path.name}'s results block differs from the fragments; regenerate it: {REGENERATE_RESULTS}"
        )
    assert (ROOT / "experiments" / "RESULTS.md").read_text() == collect.results_md(results), (
        f"experiments/RESULTS.md differs from the fragments; regenerate it: {REGENERATE_RESULTS}"
    )


def test_the_results_columns_say_which_statistic_each_interval_is_of():
    collect = _collect()
    row = collect.parse_row((ROOT / "experiments" / "results" / "pendulum_bootstrap.md").read_text())
    assert row["iqm_ci"] == collect.NOT_RECORDED  # fragments keep no per-seed values: the IQM's CI is not recomputed
    readme = _block((ROOT / "README.md").read_text(), collect.RESULTS_BEGIN, collect.GENERATED_END)
    assert "| IQM | 95 % bootstrap CI of the mean |" in readme
    assert "| IQM | 95 % bootstrap CI of the mean | 95 % bootstrap CI of the IQM |" in collect.results_md(
        ROOT / "experiments" / "results"
    )


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 400


def test_the_readme_pbt_table_is_generated_from_the_experiments_json():
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("pbt_compare", ROOT / "experiments" / "pbt_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = json.loads((ROOT / "experiments" / "results" / "pbt_compare.json").read_text())
    written = _block((ROOT / "README.md").read_text(), module.README_BEGIN, module.README_END)
    assert written == module.readme_table(results), (
        "the README's PBT table differs from experiments/results/pbt_compare.json; regenerate it: "
        "python experiments/pbt_compare.py --docs-only"
    )

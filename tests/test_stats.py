"""summary.json's statistics: the IQM's own bootstrap CI beside the mean's."""

import numpy as np

from jaxppo.stats import bootstrap_ci, iqm, summarize


def test_the_iqm_has_its_own_bootstrap_ci_that_contains_it():
    rng = np.random.default_rng(3)
    # skewed like a return with a few collapsed seeds: the IQM lies outside the mean's CI
    values = np.concatenate([rng.normal(-155.0, 5.0, 56), rng.normal(-210.0, 5.0, 8)])
    s = summarize(values)
    low, high = s["iqm_ci95"]
    assert low <= s["iqm"] == iqm(values) <= high
    assert s["ci95"][0] <= s["mean"] <= s["ci95"][1]
    assert not s["ci95"][0] <= s["iqm"] <= s["ci95"][1]  # why the mean's CI cannot stand for the IQM's
    assert summarize(values)["iqm_ci95"] == [low, high]  # a fixed seed: the same data, the same interval
    assert bootstrap_ci(values, statistic="iqm", seed=1) != (low, high)


def test_summaries_of_no_values_and_of_equal_values():
    assert np.isnan(summarize([np.nan])["iqm_ci95"]).all()
    assert summarize([500.0] * 8)["iqm_ci95"] == [500.0, 500.0]

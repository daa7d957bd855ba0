"""Uncertainty metrics and calibration (issue 24) on synthetic data whose answer is known: Gaussian errors with a
known σ, a spread that is off by a known factor, heavy-tailed errors that no single Gaussian factor can calibrate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modeling_cloud.training.uncertainty import (
    NOMINAL_1SIGMA,
    NOMINAL_2SIGMA,
    calibrated_report,
    calibrated_sigma,
    calibration_config,
    conformal_factor,
    fit_calibration,
    gaussian_nll_factor,
    gaussian_nll_floor_and_factor,
    interval_coverage,
    miscalibration_area,
    spearman,
    uncertainty_metrics,
)


@pytest.fixture
def gaussian_rows():
    rng = np.random.default_rng(24)
    sigma = rng.uniform(0.05, 2.0, 20000)
    return rng.normal(0.0, sigma), sigma


def test_true_sigma_gives_nominal_coverage_and_no_miscalibration(gaussian_rows):
    errors, sigma = gaussian_rows
    report = uncertainty_metrics(errors, sigma)
    assert report["coverage_1sigma"] == pytest.approx(NOMINAL_1SIGMA, abs=0.01)
    assert report["coverage_2sigma"] == pytest.approx(NOMINAL_2SIGMA, abs=0.01)
    assert report["miscalibration_area"] < 0.01
    # |error| grows with σ, but the ranking is noisy (|N(0, σ)| is half-normal): clearly positive, well below 1.
    assert 0.3 < report["spearman"] < 0.8
    assert report["rows"] == len(errors)


def test_a_spread_off_by_a_known_factor_is_found_by_the_nll_fit(gaussian_rows):
    errors, sigma = gaussian_rows
    spread = sigma / 3.0  # members that agree three times too well
    assert uncertainty_metrics(errors, spread)["coverage_1sigma"] < 0.3
    assert uncertainty_metrics(errors, spread)["miscalibration_area"] > 0.2
    assert gaussian_nll_factor(errors, spread) == pytest.approx(3.0, rel=0.02)
    fit = fit_calibration(errors, spread)
    assert fit["method"] == "gaussian_nll" and fit["interval_95_factor"] == pytest.approx(
        2 * fit["std_factor"]
    )
    calibrated = uncertainty_metrics(errors, fit["std_factor"] * spread)
    assert calibrated["miscalibration_area"] < 0.01


def test_spread_with_no_relation_to_the_error_has_no_rank_correlation():
    rng = np.random.default_rng(1)
    errors, spread = rng.normal(size=5000), rng.uniform(0.5, 1.5, 5000)
    assert abs(spearman(np.abs(errors), spread)) < 0.05
    assert math.isnan(spearman(np.abs(errors), np.ones(5000)))


def test_heavy_tails_need_one_factor_per_interval_and_the_conformal_ones_hold_on_new_rows():
    rng = np.random.default_rng(7)
    spread = rng.uniform(0.2, 1.0, 40000)
    errors = spread * rng.standard_t(df=2, size=spread.size)  # Student t, 2 degrees of freedom
    calibration, fresh = slice(0, 4000), slice(4000, None)
    fit = fit_calibration(errors[calibration], spread[calibration])
    # The NLL factor is inflated by the tails: too many rows inside ±1σ, and the quantile fit takes over.
    assert fit["gaussian_coverage_1sigma"] > NOMINAL_1SIGMA + 0.05
    assert fit["method"] == "quantile"
    assert fit["interval_95_factor"] > 2 * fit["std_factor"]  # the tails are wider than a Gaussian's
    cover_1 = interval_coverage(
        errors[fresh], calibrated_sigma(spread[fresh], fit["std_factor"], fit["std_floor"])
    )
    cover_2 = interval_coverage(
        errors[fresh], calibrated_sigma(spread[fresh], fit["interval_95_factor"], fit["interval_95_floor"])
    )
    assert cover_1 == pytest.approx(NOMINAL_1SIGMA, abs=0.02)
    assert cover_2 == pytest.approx(NOMINAL_2SIGMA, abs=0.02)
    config = calibration_config({"n": fit})
    assert config["method"] == "quantile" and config["std_factors"]["n"] == fit["std_factor"]


def test_a_noise_floor_is_found_and_covers_the_rows_where_members_agree():
    """Errors with σ² = a² + (k s)², a = 0.5, k = 2: the floor model recovers both, is chosen by Akaike's criterion,
    and covers nominally on fresh rows, also among the rows with the smallest spread, where one factor fails."""
    rng = np.random.default_rng(11)
    spread = rng.uniform(0.02, 1.0, 24000)
    errors = rng.normal(0.0, np.hypot(0.5, 2.0 * spread))
    calibration, fresh = slice(0, 4000), slice(4000, None)
    a, k = gaussian_nll_floor_and_factor(errors[calibration], spread[calibration])
    assert a == pytest.approx(0.5, rel=0.1) and k == pytest.approx(2.0, rel=0.05)
    fit = fit_calibration(errors[calibration], spread[calibration])
    assert fit["variance_model"] == "floor_and_factor" and fit["method"] == "gaussian_nll"
    assert fit["nll_floor_and_factor"] < fit["nll_factor"]
    assert (fit["std_floor"], fit["std_factor"]) == pytest.approx((a, k))
    assert (fit["interval_95_floor"], fit["interval_95_factor"]) == pytest.approx((2 * a, 2 * k))
    report = calibrated_report(
        errors[fresh],
        spread[fresh],
        (fit["std_factor"], fit["interval_95_factor"]),
        (fit["std_floor"], fit["interval_95_floor"]),
    )
    assert report["coverage_1sigma"] == pytest.approx(NOMINAL_1SIGMA, abs=0.015)
    assert report["coverage_2sigma"] == pytest.approx(NOMINAL_2SIGMA, abs=0.015)
    assert report["miscalibration_area"] < 0.01
    # Among the 10 % of rows where the members agree best, one factor covers far too few; the floor does not.
    quiet = spread[fresh] < np.quantile(spread[fresh], 0.1)
    one_factor = gaussian_nll_factor(errors[calibration], spread[calibration])
    assert interval_coverage(errors[fresh][quiet], one_factor * spread[fresh][quiet]) < 0.45
    floored = calibrated_sigma(spread[fresh][quiet], fit["std_factor"], fit["std_floor"])
    assert interval_coverage(errors[fresh][quiet], floored) == pytest.approx(NOMINAL_1SIGMA, abs=0.04)
    # Without the floor (a Debye ensemble's one factor), only k is fitted.
    only = fit_calibration(errors[calibration], spread[calibration], floor=False)
    assert (
        only["variance_model"] == "factor" and only["std_floor"] == 0 and only["nll_floor_and_factor"] is None
    )
    config = calibration_config({"n": fit})
    assert config["std_floors"] == {"n": fit["std_floor"]}
    assert config["interval_95_floors"] == {"n": fit["interval_95_floor"]}


def test_no_floor_is_kept_when_the_spread_alone_explains_the_errors(gaussian_rows):
    """Errors whose σ is exactly 3 × spread: Akaike's criterion keeps the one factor (its special case a = 0)."""
    errors, sigma = gaussian_rows
    fit = fit_calibration(errors, sigma / 3.0)
    assert fit["variance_model"] == "factor" and fit["std_floor"] == 0.0 and fit["interval_95_floor"] == 0.0
    assert fit["std_factor"] == pytest.approx(3.0, rel=0.02)
    assert calibrated_sigma(np.array([0.5]), 3.0) == pytest.approx([1.5])


def test_conformal_factor_is_the_finite_sample_quantile():
    errors = np.arange(1, 11, dtype=float)  # |e| / s = 1..10
    assert conformal_factor(errors, np.ones(10), 0.5) == 6.0  # ceil(11 * 0.5) = 6th smallest
    assert conformal_factor(errors, np.ones(10), 0.99) == 10.0  # capped at the largest


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="same length"):
        uncertainty_metrics(np.zeros(3), np.ones(4))
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        miscalibration_area(np.zeros(3), -np.ones(3))
    with pytest.raises(ValueError, match="no row"):
        interval_coverage([np.nan], [1.0])


def test_the_default_calibration_hold_out_has_a_floor_in_rows_and_a_cap():
    from modeling_cloud.training.options import (
        CALIBRATION_MAX_FRACTION,
        CALIBRATION_MIN_ROWS,
        DEFAULT_CALIBRATION_FRACTION,
        default_calibration_fraction,
    )

    assert default_calibration_fraction(5000) == DEFAULT_CALIBRATION_FRACTION  # 500 rows, above the floor
    assert round(1090 * default_calibration_fraction(1090)) == CALIBRATION_MIN_ROWS  # Cv(300 K): 109 -> 200
    assert default_calibration_fraction(300) == CALIBRATION_MAX_FRACTION


def test_the_calibration_rows_are_held_out_from_training_and_validation(tmp_path):
    """`--calibration-fraction` carves its rows from the training rows left after the validation hold-out;
    `--calibration FILE` reads its own rows and leaves the training rows alone; a single model has none."""
    import datasets

    from modeling_cloud.training.common import RunData, split_calibration, split_validation
    from modeling_cloud.training.options import settings_from_dict

    rows = datasets.Dataset.from_dict({"row": list(range(200))})

    def data_for(values):
        settings = settings_from_dict(
            "finetune", {"train": ["x.csv"], "target": ["n"], "output_dir": "o", **values}
        )
        train, validation, note = split_validation(rows, None, settings)
        return settings, RunData(train, validation, None, [], None, None, None, note)

    settings, data = data_for({"ensemble": 5})
    split_calibration(data, settings, encode=None)
    train, validation, calibration = (
        set(part["row"]) for part in (data.train, data.validation, data.calibration)
    )
    # 10 % of the 180 left would be 18 rows, under the 200-row floor, so the default takes its cap, 25 %
    assert len(validation) == 20 and len(calibration) == 45 and len(train) == 135
    assert (
        not (train & calibration)
        and not (validation & calibration)
        and train | validation | calibration == set(range(200))
    )
    assert f"seed {settings.training.seed + 1}," in data.calibration_note  # not the validation draw's seed

    settings, data = data_for({"ensemble": 5, "calibration_fraction": 0.0})
    split_calibration(data, settings, encode=None)
    assert data.calibration is None and len(data.train) == 180  # uncalibrated: std stays the raw spread

    table = tmp_path / "calibration.csv"
    table.write_text("scope,n\nSG225 Na 0.5 4a Cl 0.5 4b,1.5\n")
    settings, data = data_for({"ensemble": 3, "calibration": [str(table)]})
    seen = []
    split_calibration(data, settings, encode=lambda tables, purpose: seen.append((tables, purpose)) or rows)
    assert seen[0][1] == "calibration" and len(seen[0][0][0].frame) == 1
    assert len(data.train) == 180 and data.calibration is rows

    settings, data = data_for({})
    split_calibration(data, settings, encode=None)
    assert data.calibration is None and len(data.train) == 180

"""The ridge baseline's penalty search equals scikit-learn's RidgeCV, computed from the Gram matrix."""

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

from tasks.training.models.linear import GramRidgeCV


def _problem(seed: int, rows: int = 300, cols: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((rows, 5))
    X = (shared @ rng.standard_normal((5, cols)) + 0.3 * rng.standard_normal((rows, cols)) + 2.0).astype(np.float32)
    y = X[:, :3] @ np.array([0.2, -0.1, 0.05]) + 0.5 * rng.standard_normal(rows) + 4.0
    return X, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_penalty_errors_and_fit_as_ridgecv(seed):
    X, y = _problem(seed)
    alphas = (0.1, 1.0, 10.0, 100.0, 1000.0)
    ours = GramRidgeCV(alphas).fit(X, y)
    theirs = RidgeCV(alphas=alphas, store_cv_results=True).fit(X.astype(np.float64), y)
    assert ours.alpha_ == theirs.alpha_
    np.testing.assert_allclose(ours.cv_errors_, theirs.cv_results_.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-5, atol=1e-5)


def test_the_choice_is_not_always_an_end_of_the_grid():
    """A problem whose best penalty is inside the grid, so the test above cannot pass by picking an extreme."""
    chosen = {GramRidgeCV((1e-3, 1.0, 30.0, 1e4, 1e6)).fit(*_problem(seed, rows=80)).alpha_ for seed in range(6)}
    assert chosen - {1e-3, 1e6}


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="at least 2 rows"):
        GramRidgeCV().fit(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="alphas must be positive"):
        GramRidgeCV((0.0, 1.0)).fit(np.zeros((3, 2)), np.zeros(3))

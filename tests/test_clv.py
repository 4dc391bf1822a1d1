"""BG/NBD and Gamma-Gamma: parameters recovered from data simulated from the models themselves."""

import numpy as np
import pytest

from valuetier.clv.model import (
    BgNbdParams,
    ClvFitError,
    GammaGammaParams,
    customer_lifetime_value,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    probability_alive,
    simulate_bgnbd,
    simulate_gamma_gamma,
)

TRUE_BGNBD = BgNbdParams(r=0.5, alpha=5.0, a=0.6, b=2.5)
TRUE_GG = GammaGammaParams(p=6.0, q=4.0, v=15.0)


@pytest.fixture(scope="module")
def histories():
    x, t_x, T, _ = simulate_bgnbd(TRUE_BGNBD, customers=20_000, T=52, seed=1)
    return x, t_x, T


def test_bgnbd_recovers_known_parameters(histories):
    fitted = fit_bgnbd(*histories)
    assert fitted.r == pytest.approx(TRUE_BGNBD.r, rel=0.10)
    assert fitted.alpha == pytest.approx(TRUE_BGNBD.alpha, rel=0.10)
    # a and b trade off against each other; the mean dropout probability a / (a + b) is well pinned.
    assert fitted.a == pytest.approx(TRUE_BGNBD.a, rel=0.35)
    assert fitted.b == pytest.approx(TRUE_BGNBD.b, rel=0.35)
    assert fitted.a / (fitted.a + fitted.b) == pytest.approx(0.6 / 3.1, rel=0.10)


def test_gamma_gamma_recovers_known_parameters(histories):
    x = histories[0]
    fitted = fit_gamma_gamma(x, simulate_gamma_gamma(TRUE_GG, x, seed=2))
    assert fitted.p == pytest.approx(TRUE_GG.p, rel=0.15)
    assert fitted.q == pytest.approx(TRUE_GG.q, rel=0.15)
    assert fitted.v == pytest.approx(TRUE_GG.v, rel=0.15)


def test_expected_purchases_match_a_simulated_future():
    """Fitted on 52 simulated weeks, the model expects as many repeat purchases in the next 52 as
    the simulation then made, in aggregate."""
    x, t_x, T, future = simulate_bgnbd(TRUE_BGNBD, customers=20_000, T=52, seed=3, holdout_weeks=52)
    fitted = fit_bgnbd(x, t_x, T)
    assert expected_purchases(fitted, 52, x, t_x, T).sum() == pytest.approx(future.sum(), rel=0.05)


def test_probability_alive_and_value_are_sane(histories):
    x, t_x, T = histories
    fitted = fit_bgnbd(x, t_x, T)
    alive = probability_alive(fitted, x, t_x, T)
    assert np.all((alive > 0) & (alive <= 1))
    assert np.all(alive[x == 0] == 1)  # no repeat purchase, no evidence of dropout
    # Of two customers with 5 repeats, the one whose last purchase is long ago is less likely alive.
    assert (
        probability_alive(fitted, [5, 5], [50, 5], [52, 52]).tolist()[0]
        > 0.5
        > probability_alive(fitted, [5], [5], [52])[0]
    )
    result = customer_lifetime_value(x, t_x, T, simulate_gamma_gamma(TRUE_GG, x, seed=2))
    assert np.all(result.clv_12m >= 0)
    assert np.allclose(result.clv_12m, result.expected_purchases_12m * result.expected_value_per_purchase)


def test_too_few_customers_is_a_clear_error():
    with pytest.raises(ClvFitError, match="at least 50"):
        fit_bgnbd(np.ones(10), np.ones(10), np.full(10, 5.0))

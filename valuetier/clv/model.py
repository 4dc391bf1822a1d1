"""Customer lifetime value: BG/NBD for repeat purchases and Gamma-Gamma for spend, fitted with scipy.

Fader, Hardie and Lee (2005), "Counting your customers the easy way" (BG/NBD) and "RFM and CLV"
(Gamma-Gamma). Time is in weeks. A purchase is a day with at least one transaction (same-day rows
are merged, as the BG/NBD literature does); x counts repeat purchases after the first, t_x is the
time of the last purchase and T the customer's age, both from the first purchase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

WEEKS_PER_YEAR = 52.0


class ClvFitError(RuntimeError):
    """The model could not be fitted (too few customers, or the optimiser did not converge)."""


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float


def _bgnbd_loglik(params: np.ndarray, x, t_x, T, weights) -> tuple[float, np.ndarray]:
    """The weighted log-likelihood and its gradient in (r, alpha, a, b): analytic, one pass, where
    a finite-difference gradient costs four more evaluations of the likelihood."""
    r, alpha, a, b = params
    repeat = x > 0
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
    log_alpha_T, log_alpha_tx = np.log(alpha + T), np.log(alpha + t_x)
    a3 = -(r + x) * log_alpha_T
    with np.errstate(divide="ignore", invalid="ignore"):
        b_repeat = np.where(repeat, b + x - 1, 1.0)
        a4 = np.where(repeat, np.log(a) - np.log(b_repeat) - (r + x) * log_alpha_tx, -np.inf)
    a34 = np.logaddexp(a3, a4)
    # Shares of the two terms in exp(a3) + exp(a4): the gradient of log(sum) weighs theirs so.
    share3, share4 = np.exp(a3 - a34), np.exp(a4 - a34)
    psi_ab, psi_abx = special.digamma(a + b), special.digamma(a + b + x)
    d_r = special.digamma(r + x) - special.digamma(r) + np.log(alpha) - share3 * log_alpha_T - share4 * log_alpha_tx
    d_alpha = r / alpha - (r + x) * (share3 / (alpha + T) + share4 / (alpha + t_x))
    d_a = psi_ab - psi_abx + share4 / a
    d_b = psi_ab + special.digamma(b + x) - special.digamma(b) - psi_abx - share4 / b_repeat
    gradient = np.array([np.sum(weights * d) for d in (d_r, d_alpha, d_a, d_b)])
    return float(np.sum(weights * (a1 + a2 + a34))), gradient


def _aggregate(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Unique rows and their counts: the likelihood only needs each distinct (x, t_x, T) once."""
    stacked = np.column_stack(columns)
    unique, counts = np.unique(stacked, axis=0, return_counts=True)
    return [unique[:, i] for i in range(unique.shape[1])], counts.astype(float)


def _fit(loglik_and_gradient, start: np.ndarray, names: str, upper: float, scale: float) -> np.ndarray:
    """Maximise the mean log-likelihood (summed, divided by `scale` customers) over log-parameters
    within [1e-4, upper], with its analytic gradient. The bounds matter: on data with almost no
    dropout, the BG/NBD optimum runs off to a -> 0, b -> infinity, where the closed forms overflow;
    bounded, the fit lands on the same no-dropout limit with finite, stable numbers."""
    bounds = [(np.log(1e-4), np.log(upper))] * len(start)

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        value, gradient = loglik_and_gradient(params)
        # d/d log(p) = p * d/dp
        return -value / scale, -gradient * params / scale

    result = optimize.minimize(
        objective,
        np.clip(np.log(start), bounds[0][0], bounds[0][1]),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
    )
    if not result.success or not np.all(np.isfinite(result.x)):
        raise ClvFitError(f"{names} fit did not converge: {result.message}")
    return np.exp(result.x)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BgNbdParams:
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    if len(x) < 50:
        raise ClvFitError(f"BG/NBD needs at least 50 customers, got {len(x)}")
    (ux, ut, uT), w = _aggregate(x, t_x, T)
    scale = float(np.mean(T)) or 1.0
    params = _fit(lambda p: _bgnbd_loglik(p, ux, ut, uT, w), np.array([1.0, scale, 1.0, 1.0]), "BG/NBD", 1e4, len(x))
    return BgNbdParams(*map(float, params))


def expected_purchases(params: BgNbdParams, t: float, x, t_x, T) -> np.ndarray:
    """Expected repeat purchases in the next t weeks, given each customer's history."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    first = (a + b + x - 1) / (a - 1)
    second = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp
    return first * second / (1 + _dropout_odds(params, x, t_x, T))


def probability_alive(params: BgNbdParams, x, t_x, T) -> np.ndarray:
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    return 1.0 / (1.0 + _dropout_odds(params, x, t_x, T))


def _dropout_odds(params: BgNbdParams, x, t_x, T) -> np.ndarray:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        odds = (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    return np.where(x > 0, odds, 0.0)


def _gamma_gamma_loglik(params: np.ndarray, x, m, weights) -> tuple[float, np.ndarray]:
    """The weighted log-likelihood and its analytic gradient in (p, q, v)."""
    p, q, v = params
    px, log_xmv = p * x, np.log(x * m + v)
    psi_pxq = special.digamma(px + q)
    ll = (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * log_xmv
    )
    d_p = x * (psi_pxq - special.digamma(px) + np.log(m) + np.log(x) - log_xmv)
    d_q = psi_pxq - special.digamma(q) + np.log(v) - log_xmv
    d_v = q / v - (px + q) / (x * m + v)
    gradient = np.array([np.sum(weights * d) for d in (d_p, d_q, d_v)])
    return float(np.sum(weights * ll)), gradient


def fit_gamma_gamma(x: np.ndarray, mean_value: np.ndarray) -> GammaGammaParams:
    """Fitted on repeat customers with a positive mean value per purchase only."""
    x, m = np.asarray(x, dtype=float), np.asarray(mean_value, dtype=float)
    keep = (x > 0) & (m > 0)
    if keep.sum() < 50:
        raise ClvFitError(f"Gamma-Gamma needs at least 50 repeat customers with positive value, got {keep.sum()}")
    (ux, um), w = _aggregate(x[keep], m[keep])
    start = np.array([1.0, 2.0, float(np.mean(m[keep]))])
    params = _fit(lambda p: _gamma_gamma_loglik(p, ux, um, w), start, "Gamma-Gamma", 1e7, float(keep.sum()))
    return GammaGammaParams(*map(float, params))


def expected_value_per_purchase(params: GammaGammaParams, x, mean_value) -> np.ndarray:
    """Conditional expected value of a purchase; the population mean for customers without repeats."""
    p, q, v = params.p, params.q, params.v
    if q <= 1:
        raise ClvFitError(f"Gamma-Gamma q = {q:.3f} <= 1: expected value is undefined")
    x, m = np.asarray(x, dtype=float), np.asarray(mean_value, dtype=float)
    population = p * v / (q - 1)
    with np.errstate(invalid="ignore"):
        conditional = p * (v + x * m) / (p * x + q - 1)
    return np.where((x > 0) & (m > 0), conditional, population)


@dataclass(frozen=True)
class ClvResult:
    expected_purchases_12m: np.ndarray
    probability_alive: np.ndarray
    expected_value_per_purchase: np.ndarray
    clv_12m: np.ndarray
    bgnbd: BgNbdParams
    gamma_gamma: GammaGammaParams


def customer_lifetime_value(x, t_x, T, mean_value) -> ClvResult:
    """Fit both models on one calibration window and value the next 12 months (undiscounted).
    Every fit starts from the same point, so a month's values depend on its data alone, not on
    whether the month before was fitted in the same run."""
    bgnbd = fit_bgnbd(x, t_x, T)
    gg = fit_gamma_gamma(x, mean_value)
    purchases = expected_purchases(bgnbd, WEEKS_PER_YEAR, x, t_x, T)
    value = expected_value_per_purchase(gg, x, mean_value)
    return ClvResult(purchases, probability_alive(bgnbd, x, t_x, T), value, purchases * value, bgnbd, gg)


def simulate_bgnbd(
    params: BgNbdParams, customers: int, T: float, seed: int, holdout_weeks: float = 0.0
) -> tuple[np.ndarray, ...]:
    """Purchase histories drawn from the BG/NBD model itself (for parameter-recovery tests):
    x, t_x and T over the first T weeks, and the repeat purchases in the holdout_weeks after."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(params.r, 1.0 / params.alpha, customers)
    dropout = rng.beta(params.a, params.b, customers)
    x, t_x, future, now = np.zeros(customers), np.zeros(customers), np.zeros(customers), np.zeros(customers)
    active = np.ones(customers, dtype=bool)
    while active.any():
        now[active] += rng.exponential(1.0 / rate[active])
        purchased = active & (now < T + holdout_weeks)
        calibration = purchased & (now < T)
        x[calibration] += 1
        t_x[calibration] = now[calibration]
        future[purchased & ~calibration] += 1
        active = purchased & (rng.random(customers) >= dropout)
    return x, t_x, np.full(customers, float(T)), future


def simulate_gamma_gamma(params: GammaGammaParams, x: np.ndarray, seed: int) -> np.ndarray:
    """Mean value per repeat purchase drawn from the Gamma-Gamma model (0 where x = 0)."""
    rng = np.random.default_rng(seed)
    nu = rng.gamma(params.q, 1.0 / params.v, len(x))
    totals = rng.gamma(np.maximum(params.p * x, 1e-9), 1.0 / nu)
    return np.where(x > 0, totals / np.maximum(x, 1), 0.0)

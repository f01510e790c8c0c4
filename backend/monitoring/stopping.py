"""When more labels stop paying: three criteria, said in words.

- *Stabilising predictions* (Bloodgood and Vijay-Shanker, 2009): a fixed *stop set* of unlabeled
  tasks (up to ``STOP_SET``, drawn once per project at its first sync) is predicted by every
  version the sync writes. Cohen's kappa between consecutive versions' answers on it measures how
  much the model still changes its mind; when the last ``WINDOW`` kappas are all at least
  ``THRESHOLD``, predictions have stabilised. Answers are compared whole (a choice, a set of
  choices, or a task's entities), so the criterion is the same for every task kind.
- *Overall uncertainty* (Zhu et al., 2008): the mean uncertainty (1 - calibrated confidence) of
  the version's answers on the stop set, i.e. its estimated error there; below
  ``UNCERTAINTY_THRESHOLD`` little is left to learn from the pool.
- *Estimated gain*: a power law ``a - b * n^-c`` fitted to the versions' held-out scores against
  their training-set sizes (the learning curve), extrapolated ``MORE`` labels ahead, with a
  standard error from the fit's covariance.

Labels have stopped paying when predictions are stable and either the pool's uncertainty is low
or the estimated gain is below ``SMALL_GAIN``. The state lives in SQLite beside the sync's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from sklearn.metrics import cohen_kappa_score

from backend.monitoring import STOPPING, Finding
from backend.stores.queue_state import STOP_SET as STOP_SET  # the stop set's size, drawn by the store
from backend.stores.queue_state import StopRecords
from backend.stores.registry import Registry, RegistryError

WINDOW = 3
THRESHOLD = 0.99
UNCERTAINTY_THRESHOLD = 0.05  # mean (1 - calibrated confidence) on the stop set
MORE = 100  # labels ahead the gain is estimated for
SMALL_GAIN = 0.005  # an estimated gain (plus one standard error) below this is not worth MORE labels
MIN_CURVE_POINTS = 4


@dataclass(frozen=True)
class Gain:
    """The learning curve's extrapolated gain from ``more`` labels at ``labels``, in score units."""

    labels: int
    more: int
    gain: float
    stderr: float | None  # None: the fit's uncertainty is unknown
    points: int

    @property
    def small(self) -> bool:
        """Not worth ``more`` labels: small even one standard error up (never when that is unknown)."""
        return self.stderr is not None and self.gain + self.stderr < SMALL_GAIN


@dataclass(frozen=True)
class StoppingStatus:
    kappas: list[tuple[str, float, int]]  # (version, kappa with the version before it, tasks compared)
    stable: bool
    changed: list[float] = dataclasses.field(default_factory=list)  # share of tasks answered differently, per kappa
    uncertainty: float | None = None  # the latest version's mean uncertainty on the stop set
    gain: Gain | None = None

    @property
    def low_uncertainty(self) -> bool:
        return OverallUncertainty().stop(StopHistory([], self.uncertainty))

    @property
    def stop(self) -> bool:
        """More labels have stopped paying: stable predictions (``StabilizingPredictions``), and little
        left to learn (``OverallUncertainty`` or ``EstimatedGain``)."""
        return self.stable and (self.low_uncertainty or (self.gain is not None and self.gain.small))

    def finding(self) -> Finding:
        """Alarm when labels have stopped paying: people may want to stop, or label elsewhere."""
        figures = {"kappas": self.kappas, "stable": self.stable, "uncertainty": self.uncertainty}
        return Finding(STOPPING, self.stop, self.message, figures)

    @property
    def message(self) -> str:
        parts = []
        if self.kappas:
            recent = self.kappas[-WINDOW:]
            parts.append(
                f"predictions changed on up to {max(self.changed[-WINDOW:] or [0.0]):.1%} of "
                f"{recent[-1][2]:,} reference tasks over the last {len(recent)} versions (kappa "
                f"{', '.join(f'{k:.3f}' for _, k, _ in recent)}; stable once {WINDOW} in a row are "
                f">= {THRESHOLD})"
            )
        if self.uncertainty is not None:
            parts.append(
                f"mean uncertainty on them {self.uncertainty:.3f} (little left to learn below {UNCERTAINTY_THRESHOLD})"
            )
        if self.gain is not None:
            spread = "(uncertainty unknown)" if self.gain.stderr is None else f"± {100 * self.gain.stderr:.1f}"
            parts.append(
                f"estimated gain from {self.gain.more} more labels: {100 * self.gain.gain:+.1f} {spread} "
                f"points (learning curve of {self.gain.points} versions' held-out scores)"
            )
        if not self.kappas:
            verdict = "not enough versions yet to tell whether predictions are stabilising"
        elif self.stop:
            verdict = "predictions have stabilised and little is left to learn: more labels have stopped paying"
        elif self.stable:
            verdict = "predictions have stabilised: more labels are unlikely to change what annotators see"
        else:
            verdict = "predictions are still changing: labels still pay"
        return "stopping: " + "; ".join([*parts, verdict])


def _power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.power(n, -c)


def estimate_gain(points: Iterable[tuple[int, float]], more: int = MORE, seed: int = 0) -> Gain | None:
    """The gain from ``more`` labels beyond the largest training size in ``points`` ((labels, held-out
    score) per version), from a fitted power-law learning curve; None with too few distinct sizes or
    when the fit fails."""
    by_size: dict[int, list[float]] = {}
    for labels, value in points:
        if labels > 0 and value is not None and np.isfinite(value):
            by_size.setdefault(int(labels), []).append(float(value))
    if len(by_size) < MIN_CURVE_POINTS:
        return None
    n = np.array(sorted(by_size), dtype=float)
    y = np.array([np.mean(by_size[int(k)]) for k in n])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            params, cov = curve_fit(
                _power_law,
                n,
                y,
                p0=(min(1.0, y.max() + 0.02), 1.0, 0.5),
                bounds=([0, 0, 0.01], [1, 100, 3]),
                maxfev=5000,
            )
    except (RuntimeError, ValueError):
        return None
    now, ahead = n.max(), n.max() + more
    gain = float(_power_law(np.array([ahead]), *params)[0] - _power_law(np.array([now]), *params)[0])
    return Gain(int(now), more, gain, _stderr(params, cov, now, ahead, seed), len(n))


def _stderr(params: np.ndarray, cov: np.ndarray, now: float, ahead: float, seed: int) -> float | None:
    """The gain's standard error, by sampling the fit's parameters (None when the fit gives none)."""
    if not np.all(np.isfinite(cov)):
        return None
    try:
        draws = np.random.default_rng(seed).multivariate_normal(params, cov, size=500, check_valid="ignore")
    except (np.linalg.LinAlgError, ValueError):
        return None
    draws = draws[(draws[:, 1] >= 0) & (draws[:, 2] > 0)]
    if not len(draws):
        return None
    gains = _power_law(ahead, draws[:, 0], draws[:, 1], draws[:, 2]) - _power_law(now, *draws.T)
    value = float(np.std(gains))
    return value if np.isfinite(value) else None


def registry_curve(registry: Registry, project: int, min_eval: int = 20) -> list[tuple[int, float]]:
    """``learning_curve`` of a project's published versions."""
    metas = []
    for version in registry.versions(project):
        try:
            metas.append(registry.meta(project, version))
        except (RegistryError, OSError, ValueError):
            continue
    return learning_curve(metas, min_eval)


def learning_curve(metas: Iterable[dict[str, Any]], min_eval: int = 20) -> list[tuple[int, float]]:
    """(training-set size, held-out score) of published versions scored on at least ``min_eval``
    held-out annotations (registry metadata)."""
    out = []
    for meta in metas:
        metrics, training = meta.get("metrics") or {}, meta.get("training") or {}
        scored = metrics.get("primary") is not None and (metrics.get("n") or 0) >= min_eval
        if scored and training.get("train_examples"):
            out.append((int(training["train_examples"]), float(metrics["primary"])))
    return out


def answer_key(result: Any) -> str:
    """A task's whole answer as one category (order-independent JSON)."""
    return hashlib.sha256(json.dumps(result, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StopHistory:
    """What the stopping criteria observe: each version's answers on the stop set (oldest first),
    the latest one's mean uncertainty there, and the learning curve (training size, held-out score)."""

    answers: list[tuple[str, dict[int, str]]]
    uncertainty: float | None = None
    curve: Sequence[tuple[int, float]] = ()


class StoppingCriterion(ABC):
    """One criterion in small-text's shape: ``stop`` says whether labels have stopped paying by its
    own measure; the verdict combining them is ``StoppingStatus.stop``."""

    @abstractmethod
    def stop(self, history: StopHistory) -> bool: ...


@dataclass(frozen=True)
class StabilizingPredictions(StoppingCriterion):
    """Bloodgood and Vijay-Shanker (2009): Cohen's kappa between consecutive versions' answers on the
    tasks of the stop set both answered; stable once the last ``window`` are all at least ``kappa``."""

    window: int = WINDOW
    kappa: float = THRESHOLD

    def kappas(self, history: StopHistory) -> tuple[list[tuple[str, float, int]], list[float]]:
        """Per version after the first: (version, kappa with the one before, tasks compared), and
        the share of those tasks answered differently."""
        kappas, changed = [], []
        for (_, before), (version, after) in pairwise(history.answers):
            common = sorted(set(before) & set(after))
            if len(common) < 2:
                continue
            a, b = [before[t] for t in common], [after[t] for t in common]
            kappa = 1.0 if a == b else float(cohen_kappa_score(a, b))
            kappas.append((version, round(0.0 if np.isnan(kappa) else kappa, 4), len(common)))
            changed.append(sum(x != y for x, y in zip(a, b, strict=True)) / len(common))
        return kappas, changed

    def stop(self, history: StopHistory) -> bool:
        kappas, _ = self.kappas(history)
        return len(kappas) >= self.window and all(k >= self.kappa for _, k, _ in kappas[-self.window :])


@dataclass(frozen=True)
class OverallUncertainty(StoppingCriterion):
    """Zhu et al. (2008): the latest version's mean uncertainty on the stop set is below ``threshold``."""

    threshold: float = UNCERTAINTY_THRESHOLD

    def stop(self, history: StopHistory) -> bool:
        return history.uncertainty is not None and history.uncertainty < self.threshold


@dataclass(frozen=True)
class EstimatedGain(StoppingCriterion):
    """The learning curve's extrapolated gain from ``more`` labels is small even one standard error up."""

    more: int = MORE

    def gain(self, history: StopHistory) -> Gain | None:
        return estimate_gain(history.curve, self.more)

    def stop(self, history: StopHistory) -> bool:
        gain = self.gain(history)
        return gain is not None and gain.small


def stopping_status(history: StopHistory) -> StoppingStatus:
    """The three criteria on ``history``, said together."""
    stabilizing = StabilizingPredictions()
    kappas, changed = stabilizing.kappas(history)
    return StoppingStatus(
        kappas, stabilizing.stop(history), changed, history.uncertainty, EstimatedGain().gain(history)
    )


class StoppingState(StopRecords):
    """The stop set's records (``stores/queue_state.py``) read as the three criteria."""

    def status(self, project: int, curve: Sequence[tuple[int, float]] = ()) -> StoppingStatus:
        """The criteria now; ``curve``: the versions' (training size, held-out score) for the gain."""
        return stopping_status(StopHistory(self.answers(project), self.last_uncertainty(project), curve))

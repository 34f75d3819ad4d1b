"""The point score used by default: a calibrated tail probability for any univariate stream."""

from __future__ import annotations

import math

from otel_mlmon.anomaly.base import Detector, _count, _rate

__all__ = ["DefaultDetector", "default_detector"]

_LN10 = math.log(10.0)
_MAD_TO_SIGMA = 1.4826  # sigma / MAD for a normal distribution (warm-up estimate)
_ABS_TO_SIGMA = 1.2533  # sigma / E|X - mean| for a normal distribution (running estimate)
_TAIL_FROM = 3.0  # |z| beyond which a value is an exceedance: scored by the tail model, not learned
_HALF = 6.0  # surprise (decimal digits of rarity) that scores 0.5: a one-in-a-million value
_PRIOR_RATE = 0.01  # prior exceedance frequency per side (a somewhat heavy tail: normal is 0.0013)
_MIN_RATE = 1e-4  # floor of the exceedance frequency (rarer than this is not worth learning)
_PRIOR_EXCESS = 1.0  # prior mean excess beyond _TAIL_FROM, in sigmas (normal: 0.3)
_MAX_EXCESS = 2.0  # an excess is capped at this before it is learned: bounds how heavy a tail can get
_EXCESS_RATE = 0.01  # learning rate of the mean excess, per exceedance
_FLOOR = 1e-3  # sigma is at least this part of |level| (constants, and counts of one value)
_TINY = 1e-12  # absolute floor of sigma
_STEP_TO_SIGMA = 0.8862  # sigma / E|x_t - x_(t-1)| for independent normal values (sqrt(pi) / 2)
_TAIL_RUN = 3  # only the first values of a run of exceedances teach the tail (longer: maybe a new level)
_RETURN_AFTER = 3  # values ordinary under the old level, in a row, that are a return to it
_PRIOR_CONTINUE = 0.5  # prior probability that an exceedance is followed by one on its side (as likely as not)
_CONTINUE_RATE = 0.01  # learning rate of that probability, per value that follows an exceedance
# A run is scored as a run only when its nearest value is this many ``min_sigma`` from the level:
# on log latency (min_sigma 0.1) calls at least twice the usual one. Runs closer than that (a
# burst of larger batches, a warm-up at a faster pace) are ordinary changes of pace, judged value
# by value as before.
_RUN_FLOOR = 7.0
# Values learned after the warm-up before a run is scored as a run: the level is then a stream's,
# not its first few values'. A model whose first calls come in a fast burst (back-to-back calls
# after a start) and whose ordinary pace is then 2-3x slower has one long run from its first
# paced call: scored as a run, it raised a latency alert early in the life of every such model.
_RUN_MATURITY = 300


class DefaultDetector(Detector):
    """General-purpose streaming point score: per-call latencies, counts and operations series.

    Each value ``x`` is standardised against a running **level** and **spread**,
    ``z = (x - level) / sigma``, and scored by how rare such a ``z`` is: its *surprise*
    ``s = -log10 P(Z >= z)`` under a tail model learned per side, mapped to
    ``score = L / (L + ln 7)`` with ``L = ln(1 + s)``. The score is 0.5 at a one-in-a-million
    value (the default ``threshold``), 0.36 at a one-in-a-hundred one; it grows strictly with
    the deviation and stays below 1.0 for any finite value (a 20-sigma value scores about 0.55
    under the prior tail, a 1e6-sigma one about 0.86).

    * **Level and spread**: initialised from the median and MAD of the warm-up values, then an
      exponentially weighted mean and mean absolute deviation (rate ``rate``) learned from
      ordinary values only (``|z| <= 3``), so that outliers never drag them. ``sigma`` is at
      least 1/1000 of ``|level|`` and half the finest non-zero step between consecutive values
      (0.5 for counts): constant streams, zeros and discrete values are safe.
    * **Tail** (peaks over threshold, one side each): the frequency ``f`` of ``|z| > 3`` and the
      mean excess ``e`` beyond 3, with ``P(Z >= z) = f * exp(-(z - 3) / e)``: an exponential
      (generalised Pareto of shape 0) tail. Excesses are capped at 2 sigmas before they are
      learned, so a stream of frequent moderate deviations (slow calls, GC pauses) raises the
      bar, while a value far beyond anything ordinary stays surprising however often spikes
      occurred before. Inside ``|z| <= 3`` the surprise is interpolated linearly.
    * **Level shifts**: ``confirm`` consecutive exceedances on one side are a new level: the
      level and spread move to those of the run at once (it becomes normal), and the old ones
      are remembered for ``remember`` values: three consecutive values that are ordinary under
      the old level are a return to it (an incident that ends), not a new anomaly.
    * **Sustained runs** (``sustained=True``): a run of ``k`` same-side exceedances not yet
      confirmed as a new level is scored as a whole, ``P = P(Z >= z_min) * c^(k - 1)``, with
      ``z_min`` the run's smallest deviation and ``c`` the probability that an exceedance is
      followed by another on its side (learned from every value that follows one: a stream
      whose exceedances come in long runs raises its own bar, as frequent spikes raise the
      tail's), when that is rarer than the value alone and the run's nearest value is at least
      7 ``min_sigma`` from the level (on log latency: twice the usual call; a burst of calls
      1.5x or 2x slower, as larger batches make, is a change of pace, not a stall). A spread
      inflated by a busy machine (preempted calls, bursts of fast back-to-back calls) can put
      one 40x slower call below the bar, never a stall of many such calls in a row.

    Parameters
    ----------
    threshold
        Scores at or above it are anomalous (0.5: a tail probability of 1e-6).
    warm_up
        Values buffered to initialise level and spread robustly (median, MAD), scored 0.
    rate
        Learning rate of the level and the spread (about ``1 / rate`` values of memory).
    tail_rate
        Learning rate of the exceedance frequency, per value.
    confirm
        Consecutive same-side exceedances that make a new level.
    remember
        Values during which a return to the level before a shift is recognised.
    min_sigma
        Smallest spread, in the values' units: deviations within a few ``min_sigma`` are never
        anomalous (the instrumentation uses 0.1 on log seconds of latency: changes within
        about 2x of the usual call are ordinary jitter on a busy machine, not incidents).
    upper_only
        Only values above the level are anomalous (the instrumentation's latency signals: a
        call faster than usual is good news, and after a slow start, such as the first calls
        of a model filling its caches, the return to ordinary speed must not open an
        incident). Values below still teach the level, its shifts and their confirmation.
    sustained
        Score a run of same-side exceedances in progress by its length too (see above; the
        instrumentation's per-call signals, whose new levels are confirmed only after 1000
        calls: until then every call of a stall is anomalous, however busy the machine).

    Cost: O(1) time and memory per update (a dozen float operations; the warm-up buffer is
    sorted once and dropped). Timestamps are not used.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(42)
    >>> detector = default_detector()
    >>> latencies = [0.025 * rng.lognormvariate(0.0, 0.3) for _ in range(2000)]
    >>> latencies[1500:1600] = [v + 0.1 for v in latencies[1500:1600]]  # a stall of 100 calls
    >>> scores = [detector.update(v) for v in latencies]
    >>> flagged = [i for i, s in enumerate(scores) if detector.is_anomaly(s)]
    >>> flagged[0], flagged[-1]           # flagged at once, until confirmed as the new level
    (1500, 1529)
    >>> max(scores[:1500]) < 0.5, max(scores[1600:]) < 0.5   # ordinary calls; the return
    (True, True)

    A shift of 8 sigmas is no rare value under the heavy prior tail, but 50 of them in a row are:

    >>> values = [rng.gauss(0.0, 1.0) for _ in range(1000)] + [rng.gauss(8.0, 1.0) for _ in range(50)]
    >>> for sustained in (False, True):
    ...     detector = DefaultDetector(confirm=1000, sustained=sustained)
    ...     print(sum(detector.is_anomaly(detector.update(v)) for v in values))
    0
    38
    """

    def __init__(
        self,
        threshold: float = 0.5,
        warm_up: int = 20,
        rate: float = 0.02,
        tail_rate: float = 0.002,
        confirm: int = 30,
        remember: int = 500,
        min_sigma: float = 0.0,
        upper_only: bool = False,
        sustained: bool = False,
    ) -> None:
        self.rate = _rate("rate", rate)
        self.tail_rate = _rate("tail_rate", tail_rate)
        self.confirm = _count("confirm", confirm, 2)
        self.remember = _count("remember", remember, 0)
        if isinstance(min_sigma, bool) or not isinstance(min_sigma, (int, float)) or not 0.0 <= min_sigma < math.inf:
            raise ValueError(f"min_sigma must be a finite number >= 0, got {min_sigma!r}")
        self.min_sigma = float(min_sigma)
        if not isinstance(upper_only, bool):
            raise ValueError(f"upper_only must be a bool, got {upper_only!r}")
        self.upper_only = upper_only
        if not isinstance(sustained, bool):
            raise ValueError(f"sustained must be a bool, got {sustained!r}")
        self.sustained = sustained
        super().__init__(threshold, _count("warm_up", warm_up, 3))

    def _reset(self) -> None:
        self._buffer: list[float] | None = []  # warm-up values
        self._step = math.inf  # finest non-zero step between consecutive values: sigma >= half of it
        self._last = math.nan  # the previous value (none yet)
        self._level = 0.0
        self._sigma = 1.0
        self._rate_up = self._rate_down = _PRIOR_RATE  # tail model, per side
        self._excess_up = self._excess_down = _PRIOR_EXCESS
        self._run = 0  # current run of same-side exceedances: length, side, sum, sum |step|
        self._run_side = 0
        self._run_sum = 0.0
        self._run_steps = 0.0
        self._run_last = 0.0
        self._run_low = 0.0  # smallest |z| of the run
        self._run_from = 0  # values seen when the run began
        self._continue_up = self._continue_down = _PRIOR_CONTINUE  # P(an exceedance is followed by one), per side
        self._before: tuple[float, float] | None = None  # (level, sigma) before the last shift
        self._since = 0  # values since that shift
        self._back = 0  # consecutive values ordinary under the old level

    # ----------------------------------------------------------------------------------------
    def _surprise(self, z: float) -> float:
        """``-log10 P(Z >= |z|)`` on the side of ``z``, from the tail model."""
        if z >= 0.0:
            f, e, a = self._rate_up, self._excess_up, z
        else:
            f, e, a = self._rate_down, self._excess_down, -z
        if a <= _TAIL_FROM:
            return -math.log10(f) * a / _TAIL_FROM
        return (a - _TAIL_FROM) / (e * _LN10) - math.log10(f)

    def _floor(self, level: float) -> float:
        floor = _FLOOR * (level if level >= 0.0 else -level)
        half_step = 0.5 * self._step
        if half_step > floor and half_step != math.inf:
            floor = half_step
        if self.min_sigma > floor:
            floor = self.min_sigma
        return floor if floor > _TINY else _TINY

    def _start(self, values: list[float]) -> None:
        values = sorted(values)
        median = values[len(values) // 2]
        mad = sorted(abs(v - median) for v in values)[len(values) // 2]
        self._level = median
        self._sigma = max(_MAD_TO_SIGMA * mad, self._floor(median))

    def _update(self, x: float, timestamp: float | None) -> float:
        step = x - self._last if x > self._last else self._last - x
        if 0.0 < step < self._step:
            self._step = step
        self._last = x
        buffer = self._buffer
        if buffer is not None:
            buffer.append(x)
            if len(buffer) >= self.warm_up:
                self._start(buffer)
                self._buffer = None
            return 0.0
        z = (x - self._level) / self._sigma
        s = 0.0 if z < 0.0 and self.upper_only else self._surprise(z)
        if self._before is not None:  # a return to the level before the last shift?
            level, sigma = self._before
            z_before = (x - level) / sigma
            if -_TAIL_FROM <= z_before <= _TAIL_FROM and not -_TAIL_FROM <= z <= _TAIL_FROM:
                self._back += 1
                if self._back >= _RETURN_AFTER:
                    self._level, self._sigma, self._before, self._run = level, sigma, None, 0
                s_before = 0.0 if z_before < 0.0 and self.upper_only else self._surprise(z_before)
                return _score(s if s < s_before else s_before)
            self._back = 0
            self._since += 1
            if self._since > self.remember:
                self._before = None
        side = 1 if z > _TAIL_FROM else -1 if z < -_TAIL_FROM else 0
        if self.sustained and self._run:  # after an exceedance: does its run go on?
            self._learn_continue(self._run_side, side == self._run_side)
        if side:
            self._exceedance(x, side, z)
            if (self.sustained and self._run > 1 and not (side < 0 and self.upper_only)
                    and self._run_low * self._sigma >= _RUN_FLOOR * self.min_sigma
                    and self._run_from > self.warm_up + _RUN_MATURITY):  # fmt: skip
                s_run = self._run_surprise(side)
                if s_run > s:
                    s = s_run
        else:
            self._ordinary(x)
        return _score(s)

    def _learn_continue(self, side: int, went_on: bool) -> None:
        if side > 0:
            self._continue_up = max(self._continue_up + _CONTINUE_RATE * (went_on - self._continue_up), _MIN_RATE)
        else:
            self._continue_down = max(self._continue_down + _CONTINUE_RATE * (went_on - self._continue_down), _MIN_RATE)

    def _run_surprise(self, side: int) -> float:
        """``-log10`` of the probability of the run in progress: its first value at least as far
        as its nearest one, then ``run - 1`` continuations."""
        go_on = self._continue_up if side > 0 else self._continue_down
        return self._surprise(side * self._run_low) - (self._run - 1) * math.log10(go_on)

    def _ordinary(self, x: float) -> None:
        self._run = 0
        tail_rate = self.tail_rate
        self._rate_up = max(self._rate_up - tail_rate * self._rate_up, _MIN_RATE)
        self._rate_down = max(self._rate_down - tail_rate * self._rate_down, _MIN_RATE)
        rate = self.rate
        level = self._level = self._level + rate * (x - self._level)
        deviation = x - level if x > level else level - x
        sigma = self._sigma + rate * (_ABS_TO_SIGMA * deviation - self._sigma)
        floor = self._floor(level)
        self._sigma = sigma if sigma > floor else floor

    def _exceedance(self, x: float, side: int, z: float) -> None:
        deviation = z if side > 0 else -z
        if self._run and side == self._run_side:
            self._run += 1
            self._run_steps += abs(x - self._run_last)
            if deviation < self._run_low:
                self._run_low = deviation
        else:
            self._run, self._run_side, self._run_sum, self._run_steps = 1, side, 0.0, 0.0
            self._run_low = deviation
            self._run_from = self.seen
        self._run_sum += x
        self._run_last = x
        if self._run >= self.confirm:  # a new level: it becomes normal at once
            self._before, self._since, self._back = (self._level, self._sigma), 0, 0
            level = self._run_sum / self._run
            # the run's spread from its steps, so that its level drift does not count as spread
            sigma = _STEP_TO_SIGMA * self._run_steps / (self._run - 1)
            self._level = level
            self._sigma = max(sigma, self._sigma, self._floor(level))
            self._run = 0
            return
        if self._run > _TAIL_RUN:
            return  # a run in progress is not part of the tail: it may be a new level
        excess = deviation - _TAIL_FROM
        if excess > _MAX_EXCESS:
            excess = _MAX_EXCESS
        tail_rate = self.tail_rate
        if side > 0:
            self._rate_up += tail_rate * (1.0 - self._rate_up)
            self._rate_down = max(self._rate_down - tail_rate * self._rate_down, _MIN_RATE)
            self._excess_up += _EXCESS_RATE * (excess - self._excess_up)
        else:
            self._rate_down += tail_rate * (1.0 - self._rate_down)
            self._rate_up = max(self._rate_up - tail_rate * self._rate_up, _MIN_RATE)
            self._excess_down += _EXCESS_RATE * (excess - self._excess_down)


_LOG_HALF = math.log1p(_HALF)


def _score(surprise: float) -> float:
    """Surprise (decimal digits of rarity) to a score in [0, 1): 0.5 at ``_HALF``. On the log
    of the surprise, so that even a value 1e99 sigmas away scores below 1.0 and ranks."""
    log = math.log1p(surprise)
    return log / (log + _LOG_HALF)


def default_detector() -> DefaultDetector:
    """A fresh :class:`DefaultDetector` with its default hyperparameters."""
    return DefaultDetector()

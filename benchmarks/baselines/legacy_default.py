"""The default detector as it was at commit 957a505 (``otel_mlmon/anomaly/default.py``), frozen
as the ``legacy-default`` row of ``benchmarks/bench_cloudmon.py`` after the package's default
moved on.

Copied unchanged except for this docstring and the hyperparameter checks, which are inlined
from ``otel_mlmon.anomaly.base`` (private helpers there may change); only the public
``Detector`` base class is imported. The class docstring below describes the detector as it
was then.
"""

from __future__ import annotations

import math
from typing import Any

from otel_mlmon.anomaly.base import Detector

__all__ = ["DefaultDetector", "default_detector"]

_MAD_TO_SIGMA = 1.4826
_ABS_TO_SIGMA = 1.2533  # sigma / E|X| for a normal distribution
_TAIL_FROM = 3.0  # |z| above which deviations feed the tail model
_CLIP = 2.5  # residuals are clipped at +-_CLIP sigma before they are learned
_DAY = 86_400.0
_WEEKDAYS = 7
_NOVEL = 3.0  # level-rate multiplier where the profile has not seen this weekday and time
_NEW_DAY = 0.5  # part of the level kept into a new day whose weekday the profile has not seen
_PRIOR_N = 5.0  # weight (in exceedances) of the prior mean excess of the tail model
_EXCESS_RATE = 0.05  # learning rate of the mean excess, per exceedance
_TAIL_RATE = 0.001  # learning rate of the exceedance frequency, per value
_PHI_RATE = 0.005  # learning rate of the lag-1 autocorrelation
_RETURN = 300  # values after a shift during which a return to the old level ends an episode
_BEYOND_FROM = 4.0  # record evidence: sigmas beyond the largest excess seen,
_BEYOND = 0.14  # plus this part of that excess, to its alarm level (then quadratic)
_MAX_DECAY = 1e-4  # per value: the largest excess seen decays towards the typical excess


# Hyperparameter checks, as in otel_mlmon.anomaly.base at 957a505.


def _number(name: str, value: Any) -> float:
    if not isinstance(value, bool) and isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            pass
        else:
            if number - number == 0.0:
                return number
    raise ValueError(f"{name} must be a finite number, got {value!r}")


def _positive(name: str, value: Any) -> float:
    number = _number(name, value)
    if not number > 0.0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return number


def _rate(name: str, value: Any) -> float:
    number = _number(name, value)
    if not 0.0 < number < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return number


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class DefaultDetector(Detector):
    """General-purpose streaming detector: per-call latencies and coarse operations series.

    Each value ``x`` (observed at ``timestamp``) is compared with a prediction and scored by
    three pieces of evidence, each scaled so that 1 is its alarm level; the score is
    ``e / (1 + e)`` for the largest, ``e`` (0.5 at an alarm level, the default ``threshold``).

    **Scale.** Positive values are taken on the log scale (latency, sizes, traffic: skewed,
    multiplicative noise); other values as they are. When the stream has a daily profile
    (three days of timestamps), Tukey's spread-versus-level rule checks the choice, once:
    when the spread does not grow with the level (additive noise, e.g. utilisation), the
    state is converted to the values' scale.

    **Prediction.** ``base + season(t) + level + phi * previous residual``:

    * ``base``, the median of the warm-up values; ``level``, a robust (Huber) exponentially
      weighted level: residuals are clipped at 2.5 sigma before they are learned, so spikes
      do not drag it, and slow drifts are followed (rate ``level_rate``).
    * ``season(t)``: when timestamps span a day, a time-of-day profile (slots of
      ``slot_seconds``, linearly interpolated between slot centres) plus day-of-week
      corrections, learned once per slot visit from the visit's mean clipped residual (a
      running mean over the first days, then exponentially weighted). A time of day is used
      after one day, a weekday correction after one week; where the profile has no data for
      this weekday yet, the level follows three times faster and keeps half of its value
      into the new day. A spread factor per time of day (smoothed over neighbouring slots)
      makes quiet and busy hours comparable.
    * ``phi``: the lag-1 autocorrelation of the residuals; the evidence is computed on the
      innovations ``residual - phi * previous residual`` in units of the spread ``sigma``
      (exponentially weighted mean absolute innovation, clipped), so autocorrelated noise does
      not accumulate into false shifts.

    **Evidence.**

    * *Point*: the surprise ``-ln P(z or beyond)`` under a tail model learned per side
      (frequency of ``|z| > 3`` and mean excess beyond it: a light tail makes a 6-sigma value
      alarming, a heavy one, such as GC pauses in per-call latency, does not), over
      ``surprise`` (13.8 nats: p = 1e-6). Each excess is capped at 1 + 3 times the current
      mean before it is learned, so a few wild values do not flatten the tail. A mean excess
      says nothing about values far beyond the largest excess seen (a slowly decaying maximum
      ``m`` per side, in sigmas), so a record counts at least ``(d / (4 + 0.14 m))**2``, ``d``
      its excess beyond ``m``: however heavy the tail, a value far beyond anything it has
      seen alarms. A record raises ``m`` at most to where it alarms, so a repeated wild value
      is learned in a few steps.
    * *Shift*: a two-sided CUSUM of the innovations clipped at 2 sigma, allowance
      ``shift / 2``, over ``shift_limit``: sustained moderate deviations alarm even when no
      single value does, while a burst of a few slow calls does not. While it builds up, the
      level, the spread, ``phi`` and the tail model learn less or not at all (they must not
      absorb the shift before it is confirmed); once confirmed, the level moves to the mean of
      the run at once. A return to the level before a recent shift (within 300 values) is the
      end of an episode, not a new alarm.
    * *Spread*: CUSUMs of the log-likelihood ratio of a spread twice as wide, one per side;
      the smaller of the two counts, because a wider spread shows on both sides while a burst
      of slow calls shows on one only. Once confirmed, sigma is rescaled at once.

    Parameters
    ----------
    threshold
        Scores at or above it are anomalous (0.5: one of the evidences at its alarm level).
    warm_up
        Values buffered to initialise level, spread and tails robustly (median, MAD), scored
        0 (>= 10).
    level_rate
        Learning rate of the level (about ``1 / level_rate`` values of memory).
    scale_rate
        Learning rate of the spread.
    shift
        Smallest shift the CUSUM is tuned for, in sigmas (allowance ``shift / 2``).
    shift_limit
        CUSUM alarm level (higher: fewer false alarms, later detection).
    spread_limit
        Alarm level of the spread CUSUMs.
    surprise
        Point alarm level, in nats of surprise.
    log
        ``True``/``False`` forces the scale; ``None`` chooses as described above.
    seasonal
        Learn and use the time-of-day and day-of-week profile (needs timestamps).
    slot_seconds
        Width of the time-of-day slots; divides a day into at least 4 slots.

    Cost: O(1) time per update (a handful of float operations; one profile fold per slot
    change; a one-off O(warm_up log warm_up) at the end of the warm-up and a one-off
    O(slots) scale check) and O(1) memory (fixed arrays: ``17 * 86400 / slot_seconds``
    numbers, 816 by default, plus the warm-up buffer until it ends). Timestamps that are not
    finite numbers are treated as absent; values are learned in the order given.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(42)
    >>> detector = default_detector()
    >>> t0 = 1_700_000_000.0                                  # epoch seconds
    >>> latencies = [0.025 * rng.lognormvariate(0.0, 0.3) for _ in range(2000)]
    >>> latencies[1500:] = [2.0 * v for v in latencies[1500:]]  # a slow deploy at call 1500
    >>> scores = [detector.update(v, t0 + 0.02 * i) for i, v in enumerate(latencies)]
    >>> [i for i, s in enumerate(scores) if detector.is_anomaly(s)]
    [1515]
    >>> round(max(scores[:1500]), 2)                          # the ordinary stays below 0.5
    0.37
    """

    def __init__(
        self,
        threshold: float = 0.5,
        warm_up: int = 60,
        level_rate: float = 0.02,
        scale_rate: float = 0.01,
        shift: float = 1.0,
        shift_limit: float = 18.0,
        spread_limit: float = 12.0,
        surprise: float = 13.8,
        log: bool | None = None,
        seasonal: bool = True,
        slot_seconds: float = 1800.0,
    ) -> None:
        self.level_rate = _rate("level_rate", level_rate)
        self.scale_rate = _rate("scale_rate", scale_rate)
        self.shift = _positive("shift", shift)
        self.shift_limit = _positive("shift_limit", shift_limit)
        self.spread_limit = _positive("spread_limit", spread_limit)
        self.surprise = _positive("surprise", surprise)
        if log is not None and not isinstance(log, bool):
            raise ValueError(f"log must be True, False or None (automatic), got {log!r}")
        self.log = log
        if not isinstance(seasonal, bool):
            raise ValueError(f"seasonal must be a bool, got {seasonal!r}")
        self.seasonal = seasonal
        slot_seconds = _positive("slot_seconds", slot_seconds)
        if not (_DAY / slot_seconds).is_integer() or slot_seconds > _DAY / 4:
            raise ValueError(f"slot_seconds must divide a day into at least 4 slots, got {slot_seconds!r}")
        self.slot_seconds = slot_seconds
        super().__init__(threshold, _count("warm_up", warm_up, 10))

    # ----------------------------------------------------------------------------------------
    # state

    def _reset(self) -> None:
        self._buffer: list[float] | None = []  # warm-up values
        self._log = False
        self._floor = 0.0  # smallest value taken on the log scale
        # prediction = base + season(t) + level + phi * previous residual
        self._base = 0.0  # the median of the warm-up values
        self._level = 0.0  # robust level, relative to base + season
        self._prev = 0.0  # previous residual, clipped
        self._phi = 0.0  # lag-1 autocorrelation of the residuals ...
        self._cov = 0.0  # ... = slow mean of residual * previous residual / slow mean of residual**2
        self._var = 1.0
        self._sigma = 1.0  # spread of the innovations (residual - phi * previous residual)
        self._sigma_tiny = 0.0  # floor of sigma relative to the values' magnitude
        self._sigma_min = 0.0  # floor of sigma: that, or half the finest step between values
        self._quantum = math.inf  # finest non-zero step between consecutive values
        self._last_y = 0.0
        # level-shift CUSUMs (in sigmas) and the sums of residuals of their current runs
        self._up = self._down = 0.0
        self._up_sum = self._down_sum = 0.0
        self._up_n = self._down_n = 0
        self._before = 0.0  # the level before the last confirmed shift,
        self._since = 1 << 30  # and the number of values since it
        # spread CUSUMs, one per side, and a fast mean of z**2
        self._wide_up = self._wide_down = 0.0
        self._z2 = 1.0
        # tail model per side: frequency of z beyond _TAIL_FROM, mean excess, log(frequency)
        self._rate_up = self._rate_down = 0.003
        self._excess_up = self._excess_down = 0.3
        self._lograte_up = self._lograte_down = math.log(0.003)
        # largest excess seen per side, in units of the values (slowly decaying)
        self._max_up = self._max_down = 0.0
        # seasonal profile: value at the centre of each time-of-day slot, day-of-week
        # corrections and spread factors; used once the stream spans a day
        slots = int(round(_DAY / self.slot_seconds))
        self._slots = slots
        self._day = [0.0] * slots
        self._day_n = [0] * slots
        self._week = [0.0] * (slots * _WEEKDAYS)
        self._week_n = [0] * (slots * _WEEKDAYS)
        self._spread = [1.0] * slots
        self._active_from = math.inf
        self._active = False
        self._scale_check = math.inf  # when to choose between the log scale and the values
        self._slot_lo = math.inf  # current slot: [lo, hi) in epoch seconds
        self._slot_hi = -math.inf
        self._slot = 0
        self._slot_week = 0
        self._mid = 0.0  # season at the slot centre, and its slopes (per second) around it
        self._left = 0.0
        self._right = 0.0
        self._q = 1.0  # spread factor of the slot
        self._novel = False  # no value seen yet for this weekday and time of day
        self._acc = 0.0  # sums over the current slot visit: clipped value - base - level,
        self._acc_level = 0.0  # level,
        self._acc_abs = 0.0  # and |z| (clipped)
        self._acc_n = 0

    # ----------------------------------------------------------------------------------------
    # warm-up and seasonal profile

    def _start(self) -> None:
        """End of warm-up: choose the scale, initialise level, spread and tails from the buffer."""
        values = self._buffer
        positive = min(values) > 0.0
        self._log = positive if self.log is None else self.log
        ordered = sorted(values)
        if self._log:
            self._floor = (ordered[len(ordered) // 2] if positive else 1.0) * 1e-3
            ys = [math.log(v if v > self._floor else self._floor) for v in values]
            ordered = sorted(ys)
        else:
            ys = values
        median = ordered[len(ordered) // 2]
        mad = sorted(abs(y - median) for y in ys)[len(ys) // 2]
        steps = [abs(b - a) for a, b in zip(ys, ys[1:]) if b != a]
        self._quantum = min(steps) if steps else math.inf
        self._last_y = ys[-1]
        self._sigma_tiny = 1e-3 if self._log else 1e-9 * max(1.0, abs(median))
        self._sigma_min = max(self._sigma_tiny, 0.5 * self._quantum) if steps else self._sigma_tiny
        sigma = max(_MAD_TO_SIGMA * mad, self._sigma_min)
        self._base = median
        self._sigma = sigma
        self._var = sigma * sigma
        # tail model from the warm-up values, shrunk towards a near-normal tail
        n = len(ys)
        for side in (1.0, -1.0):
            excess = [side * (y - median) / sigma - _TAIL_FROM for y in ys]
            excess = [e for e in excess if e > 0.0]
            rate = (len(excess) + 0.6) / (n + 200.0)
            mean = (sum(excess) + 0.3 * _PRIOR_N) / (len(excess) + _PRIOR_N)
            top = sigma * (max(excess) if excess else 0.0)
            if side > 0:
                self._rate_up, self._excess_up, self._lograte_up = rate, mean, math.log(rate)
                self._max_up = top
            else:
                self._rate_down, self._excess_down, self._lograte_down = rate, mean, math.log(rate)
                self._max_down = top
        self._buffer = None

    def _new_slot(self, t: float) -> None:
        """Fold the current slot visit into the profile; open the slot of ``t``."""
        n = self._acc_n
        if n:
            mean = self._acc / n
            i, w = self._slot, self._slot_week
            week_n = self._week_n[w]
            ratio = _ABS_TO_SIGMA * self._acc_abs / n  # spread of the visit / expected
            ratio = 0.05 if ratio < 0.05 else (20.0 if ratio > 20.0 else ratio)
            if not self._day_n[i]:  # first visit of this time of day: all of it
                self._day[i] = mean + self._acc_level / n
                self._spread[i] = ratio
            else:
                k = self._day_n[i]
                residual = mean - self._day[i] - (self._week[w] if week_n else 0.0)
                gain = 1.0 / (k + 1) if k < 4 else 0.2  # a running mean over the first days
                self._day[i] += gain * residual
                if not week_n:  # first visit of this weekday and time: the rest of the
                    # deviation, and what the level took of it
                    self._week[w] = (1.0 - gain) * residual + self._acc_level / n
                else:
                    self._week[w] += 0.3 * residual
                self._week_n[w] = week_n + 1
                # the first visit's spread (before the profile was used) is replaced by the
                # next one's, then averaged
                self._spread[i] *= ratio if k == 1 else (ratio**0.5 if k == 2 else ratio**0.2)
            self._day_n[i] += 1
        self._acc = self._acc_level = self._acc_abs = 0.0
        self._acc_n = 0
        if self._active_from == math.inf:
            self._active_from = t + _DAY
        if not self._active and t >= self._active_from:
            self._active = True
            self._level = 0.0  # what the level followed is now explained by the profile
            if self._log and self.log is None:
                self._scale_check = t + 2.0 * _DAY
        if t >= self._scale_check:
            self._scale_check = math.inf
            self._choose_scale()
        size = self.slot_seconds
        days = math.floor(t / _DAY)
        i = int((t - days * _DAY) // size)
        slots = self._slots
        w = ((days + 3) % _WEEKDAYS) * slots + i  # 1970-01-01 was a Thursday
        self._slot_lo = days * _DAY + i * size
        self._slot_hi = self._slot_lo + size
        self._slot, self._slot_week = i, w
        if self._active:
            # where this weekday and time has no correction yet, neither do its neighbours
            # (the one just visited has learned one today, with what the level holds)
            novel = self._novel = not self._week_n[w]
            if novel and i == 0:  # a new day whose weekday is not known yet: what the level
                self._level *= _NEW_DAY  # holds of the previous day may not apply to it
            last = slots * _WEEKDAYS - 1
            here = self._season(w, novel)
            self._mid = here
            self._left = (here - self._season(w - 1 if w else last, novel)) / size
            self._right = (self._season(w + 1 if w < last else 0, novel) - here) / size
            spread = self._spread  # smoothed over neighbouring slots: fewer, noisier values
            self._q = 0.5 * spread[i] + 0.25 * (spread[i - 1] + spread[i + 1 if i + 1 < slots else 0])

    def _choose_scale(self) -> None:
        """After three days, keep the log scale or go back to the values (once).

        Tukey's spread-versus-level rule: if the spread of the values grows as ``level ** b``,
        ``b`` near 1 (multiplicative noise: latency, traffic) wants the log scale and ``b``
        near 0 (additive noise: utilisation) the values themselves. On the log scale, the
        spread factors of the time-of-day slots (learned while the profile was in use) fall
        with the slot's level with slope ``b - 1``.
        """
        slots = self._slots
        pairs = [(self._base + self._day[i], math.log(self._spread[i])) for i in range(slots) if self._day_n[i] > 2]
        if len(pairs) < slots // 2:
            return
        xs = [x for x, _ in pairs]
        if max(xs) - min(xs) < 0.5:  # too flat a day to tell
            return
        mean_x = sum(xs) / len(xs)
        mean_y = sum(y for _, y in pairs) / len(pairs)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in pairs) / sum((x - mean_x) ** 2 for x in xs)
        if 1.0 + slope > 0.5:
            return
        # convert the state to the values' scale
        base = self._base
        new_base = math.exp(base)
        sigma = self._sigma
        spreads = [0.0] * slots
        for w, n in enumerate(self._week_n):
            if n:
                i = w % slots
                self._week[w] = math.exp(base + self._day[i] + self._week[w]) - math.exp(base + self._day[i])
        for i in range(slots):
            if self._day_n[i]:
                value = math.exp(base + self._day[i])
                spreads[i] = sigma * self._spread[i] * value
                self._day[i] = value - new_base
        known = sorted(v for v in spreads if v > 0.0)
        new_sigma = known[len(known) // 2]
        self._spread = [v / new_sigma if v > 0.0 else 1.0 for v in spreads]
        self._level = (math.exp(self._level) - 1.0) * (new_base + self._day[self._slot])
        self._log = False
        self._max_up *= new_sigma / sigma  # the largest excesses, in sigmas as they were
        self._max_down *= new_sigma / sigma
        self._base = new_base
        self._sigma = new_sigma
        self._sigma_min = self._sigma_tiny = 1e-9 * max(1.0, abs(new_base))
        self._quantum = math.inf  # learned again on the new scale
        self._last_y = new_base + self._day[self._slot]
        self._var = new_sigma * new_sigma
        self._cov = self._phi * self._var
        self._prev = 0.0
        self._up = self._down = self._up_sum = self._down_sum = 0.0
        self._up_n = self._down_n = 0
        self._since = 1 << 30

    def _season(self, w: int, novel: bool) -> float:
        value = self._day[w % self._slots]
        return value + self._week[w] if self._week_n[w] and not novel else value

    # ----------------------------------------------------------------------------------------
    # per value

    def _update(self, x: float, t: float | None) -> float:
        if self._buffer is not None:
            self._buffer.append(x)
            if len(self._buffer) >= self.warm_up:
                self._start()
            return 0.0
        if type(t) is not float or t - t != 0.0:
            t = _timestamp(t)
        season = 0.0
        q = 1.0
        if t is not None and self.seasonal:
            if not self._slot_lo <= t < self._slot_hi:
                self._new_slot(t)  # may change the scale, the base and the level
            if self._active:
                d = t - self._slot_lo - 0.5 * self.slot_seconds
                season = self._mid + d * (self._left if d < 0.0 else self._right)
                q = self._q
        if self._log:
            y = math.log(x if x > self._floor else self._floor)
        else:
            y = x
        base = self._base
        level = self._level
        structural = base + season + level
        r = y - structural  # residual of the structural model
        sigma = self._sigma
        s = sigma * q
        if s < self._sigma_min:
            s = self._sigma_min
        e = r - self._phi * self._prev  # innovation
        z = e / s

        # point evidence: surprise of z under the tail of its side, over the alarm level
        if z >= 0.0:
            a, lograte, excess, top = z, self._lograte_up, self._excess_up, self._max_up
        else:
            a, lograte, excess, top = -z, self._lograte_down, self._excess_down, self._max_down
        if a > _TAIL_FROM:
            point = (-lograte + (a - _TAIL_FROM) / excess) / self.surprise
            # a record far beyond the largest value the tail has seen alarms however heavy
            # the tail: its mean excess says nothing about values well past its maximum
            top /= s
            record = (a - _TAIL_FROM - top) / (_BEYOND_FROM + _BEYOND * top)
            if record > 0.0:
                record *= record
                if record > point:
                    point = record
        else:
            point = -lograte * (a * a / (_TAIL_FROM * _TAIL_FROM)) / self.surprise

        if self._since < _RETURN and point >= 1.0:
            # soon after a shift, a value back at the old level ends an episode: no surprise
            back = (y - structural + level - self._before) / s
            if -_TAIL_FROM < back < _TAIL_FROM:
                point = 0.9

        # level-shift evidence: two-sided CUSUM of the clipped z
        zc = 2.0 if z > 2.0 else (-2.0 if z < -2.0 else z)
        k = 0.5 * self.shift
        up = self._up + zc - k
        if up > 0.0:
            self._up = up
            self._up_sum += r
            self._up_n += 1
        else:
            self._up = up = self._up_sum = 0.0
            self._up_n = 0
        down = self._down - zc - k
        if down > 0.0:
            self._down = down
            self._down_sum += r
            self._down_n += 1
        else:
            self._down = down = self._down_sum = 0.0
            self._down_n = 0
        shift = (up if up > down else down) / self.shift_limit
        jump = 0.0
        self._since += 1
        confirmed = shift >= 1.0
        if confirmed:
            jump = self._up_sum / self._up_n if up > down else self._down_sum / self._down_n
            if self._since < _RETURN and abs(level + jump - self._before) < 2.0 * s:
                shift = 0.9  # back to the level before a recent shift: the end of an episode

        # spread evidence: a wider spread shows on both sides, a one-sided burst does not
        z2 = z * z if a < 3.0 else 9.0
        llr = 0.375 * z2 - 0.693  # log-likelihood ratio of a spread twice as wide, per value
        wide_up, wide_down = self._wide_up, self._wide_down
        if z >= 0.0:
            wide_up += llr
            wide_down -= 0.1
        else:
            wide_down += llr
            wide_up -= 0.1
        self._wide_up = wide_up = wide_up if wide_up > 0.0 else 0.0
        self._wide_down = wide_down = wide_down if wide_down > 0.0 else 0.0
        self._z2 += 0.1 * (z2 - self._z2)
        spread = (wide_up if wide_up < wide_down else wide_down) / self.spread_limit

        evidence = point
        if shift > evidence:
            evidence = shift
        if spread > evidence:
            evidence = spread

        # learning
        clip = _CLIP * s
        if confirmed:  # a confirmed level shift (or the end of an episode): move at once
            if shift >= 1.0:
                self._before = level
                self._since = 0
            level += jump
            self._up = self._down = self._up_sum = self._down_sum = 0.0
            self._up_n = self._down_n = 0
            r -= jump
            e = r
        rc = r if -clip < r < clip else (clip if r > 0.0 else -clip)
        # the level learns less while a shift is building up, so it does not absorb the shift
        # before the CUSUM can confirm it (a slow drift never builds up: it is learned)
        gate = 1.0 - (self._up if self._up > self._down else self._down) / self.shift_limit
        if self._novel and self._active:  # the profile knows nothing here yet: follow faster
            gate = _NOVEL
        self._level = level + self.level_rate * gate * rc
        if spread >= 1.0:  # a confirmed change of spread
            sigma *= self._z2**0.5
            self._wide_up = self._wide_down = 0.0
        else:  # learns less while a change of spread builds up (as the level does)
            ec = (e if e > 0.0 else -e) / q
            gate = 1.0 - (wide_up if wide_up < wide_down else wide_down) / self.spread_limit
            if shift > 0.5:  # nor while a level shift builds up: those are not noise
                gate *= 2.0 - 2.0 * shift if shift < 1.0 else 0.0
            sigma += self.scale_rate * gate * (_ABS_TO_SIGMA * (ec if ec < _CLIP * sigma else _CLIP * sigma) - sigma)
        self._sigma = sigma if sigma > self._sigma_min else self._sigma_min
        if shift < 0.5:  # a building shift is not autocorrelated noise
            self._cov += _PHI_RATE * (rc * self._prev - self._cov)
            self._var += _PHI_RATE * (rc * rc - self._var)
            phi = self._cov / self._var if self._var > 0.0 else 0.0
            self._phi = phi if phi < 0.9 else 0.9
        self._prev = rc
        if shift < 0.5 and spread < 0.5:
            # the tail model learns from ordinary values only (not from a building shift), and
            # an excess at most 1 + 3 times the current mean, so one wild value cannot flatten it
            if z >= 0.0:
                if a > _TAIL_FROM:
                    self._rate_up += _TAIL_RATE * (1.0 - self._rate_up)
                    x = a - _TAIL_FROM
                    cap = 1.0 + 3.0 * excess
                    self._excess_up += _EXCESS_RATE * ((x if x < cap else cap) - excess)
                    if x > top:  # a record: at most to where the record evidence alarms
                        step = _BEYOND_FROM + _BEYOND * top
                        self._max_up = s * (x if x < top + step else top + step)
                else:
                    self._rate_up *= 1.0 - _TAIL_RATE
                    self._max_up -= _MAX_DECAY * (self._max_up - s * excess)
                self._lograte_up = math.log(self._rate_up)
            else:
                if a > _TAIL_FROM:
                    self._rate_down += _TAIL_RATE * (1.0 - self._rate_down)
                    x = a - _TAIL_FROM
                    cap = 1.0 + 3.0 * excess
                    self._excess_down += _EXCESS_RATE * ((x if x < cap else cap) - excess)
                    if x > top:  # a record: at most to where the record evidence alarms
                        step = _BEYOND_FROM + _BEYOND * top
                        self._max_down = s * (x if x < top + step else top + step)
                else:
                    self._rate_down *= 1.0 - _TAIL_RATE
                    self._max_down -= _MAX_DECAY * (self._max_down - s * excess)
                self._lograte_down = math.log(self._rate_down)
        step = y - self._last_y  # the floor of sigma learns the finest step (after scoring)
        self._last_y = y
        if step and -self._quantum < step < self._quantum:
            self._quantum = step if step > 0.0 else -step
            self._sigma_min = max(self._sigma_tiny, 0.5 * self._quantum)
        if t is not None and self.seasonal:
            self._acc += season + rc
            self._acc_level += level
            self._acc_abs += a if a < 3.0 else 3.0
            self._acc_n += 1
        return evidence / (1.0 + evidence)


def _timestamp(t: object) -> float | None:
    """``t`` as finite epoch seconds, or None (no timestamp, or not a usable one)."""
    if t is None:
        return None
    try:
        t = float(t)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return t if t - t == 0.0 else None


def default_detector() -> DefaultDetector:
    """A fresh :class:`DefaultDetector` with its default hyperparameters."""
    return DefaultDetector()

"""The general-purpose detector used by default: robust, seasonal, shift-aware."""

from __future__ import annotations

import math

from otel_mlmon.anomaly.base import Detector, _count, _positive, _rate

__all__ = ["DefaultDetector", "default_detector"]

_MAD_TO_SIGMA = 1.4826
_ABS_TO_SIGMA = 1.2533  # sigma / E|X| for a normal distribution
_TAIL_FROM = 3.0  # |z| above which deviations feed the tail model
_CLIP = 2.5  # residuals are clipped at +-_CLIP sigma before they are learned
_DAY = 86_400.0
_WEEKDAYS = 7
_GATE = 1.0
_NOVEL = 3.0
_PRIOR_N = 5.0
_EXCESS_RATE = 0.05


class DefaultDetector(Detector):
    """Placeholder docstring (rewritten below)."""

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
        self._sigma_min = 0.0
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
        self._sigma_min = 1e-3 if self._log else 1e-9 * max(1.0, abs(median))
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
            if side > 0:
                self._rate_up, self._excess_up, self._lograte_up = rate, mean, math.log(rate)
            else:
                self._rate_down, self._excess_down, self._lograte_down = rate, mean, math.log(rate)
        self._buffer = None

    def _new_slot(self, t: float) -> None:
        """Fold the current slot visit into the profile; open the slot of ``t``."""
        n = self._acc_n
        if n:
            mean = self._acc / n
            i, w = self._slot, self._slot_week
            week_n = self._week_n[w]
            ratio = _ABS_TO_SIGMA * self._acc_abs / n  # spread of the visit / expected
            if not self._day_n[i]:  # first visit of this time of day: all of it
                self._day[i] = mean + self._acc_level / n
                self._spread[i] = ratio
            else:
                residual = mean - self._day[i] - (self._week[w] if week_n else 0.0)
                if not week_n:  # first visit of this weekday and time: what the level took too
                    self._week[w] = residual + self._acc_level / n
                else:
                    self._day[i] += 0.2 * residual
                    self._week[w] += 0.3 * residual
                self._week_n[w] = week_n + 1
                # the first visit's spread (before the profile was used) is replaced by the
                # next one's, then averaged
                k = self._day_n[i]
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
            last = slots * _WEEKDAYS - 1
            here = self._season(w)
            self._mid = here
            self._left = (here - self._season(w - 1 if w else last)) / size
            self._right = (self._season(w + 1 if w < last else 0) - here) / size
            self._q = self._spread[i]
            self._novel = not self._week_n[w]

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
        self._base = new_base
        self._sigma = new_sigma
        self._sigma_min = 1e-9 * max(1.0, abs(new_base))
        self._var = new_sigma * new_sigma
        self._cov = self._phi * self._var
        self._prev = 0.0
        self._up = self._down = self._up_sum = self._down_sum = 0.0
        self._up_n = self._down_n = 0
        self._since = 1 << 30

    def _season(self, w: int) -> float:
        value = self._day[w % self._slots]
        return value + self._week[w] if self._week_n[w] else value

    # ----------------------------------------------------------------------------------------
    # per value

    def _update(self, x: float, t: float | None) -> float:
        if self._buffer is not None:
            self._buffer.append(x)
            if len(self._buffer) >= self.warm_up:
                self._start()
            return 0.0
        if self._log:
            y = math.log(x if x > self._floor else self._floor)
        else:
            y = x
        base = self._base
        level = self._level
        season = 0.0
        q = 1.0
        if t is not None and self.seasonal:
            if not self._slot_lo <= t < self._slot_hi:
                self._new_slot(t)
            if self._active:
                d = t - self._slot_lo - 0.5 * self.slot_seconds
                season = self._mid + d * (self._left if d < 0.0 else self._right)
                q = self._q
        structural = base + season + level
        r = y - structural  # residual of the structural model
        sigma = self._sigma
        s = sigma * q
        e = r - self._phi * self._prev  # innovation
        z = e / s

        # point evidence: surprise of z under the tail of its side, over the alarm level
        if z >= 0.0:
            a, lograte, excess = z, self._lograte_up, self._excess_up
        else:
            a, lograte, excess = -z, self._lograte_down, self._excess_down
        if a > _TAIL_FROM:
            point = (-lograte + (a - _TAIL_FROM) / excess) / self.surprise
        else:
            point = -lograte * (a * a / (_TAIL_FROM * _TAIL_FROM)) / self.surprise

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
        if shift >= 1.0:
            jump = self._up_sum / self._up_n if up > down else self._down_sum / self._down_n
            if self._since < 300 and abs(level + jump - self._before) < 2.0 * s:
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
        if jump:  # a confirmed level shift: move to the new level at once
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
        gate = 1.0 - _GATE * (self._up if self._up > self._down else self._down) / self.shift_limit
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
        self._cov += 0.005 * (rc * self._prev - self._cov)
        self._var += 0.005 * (rc * rc - self._var)
        phi = self._cov / self._var if self._var > 0.0 else 0.0
        self._phi = phi if phi < 0.9 else 0.9
        self._prev = rc
        if shift < 0.5 and spread < 0.5:
            # the tail model learns from ordinary values only (not from a building shift), and
            # an excess at most 1 + 3 times the current mean, so one wild value cannot flatten it
            if z >= 0.0:
                if a > _TAIL_FROM:
                    self._rate_up += 0.001 * (1.0 - self._rate_up)
                    x = a - _TAIL_FROM
                    cap = 1.0 + 3.0 * excess
                    self._excess_up += _EXCESS_RATE * ((x if x < cap else cap) - excess)
                else:
                    self._rate_up *= 0.999
                self._lograte_up = math.log(self._rate_up)
            else:
                if a > _TAIL_FROM:
                    self._rate_down += 0.001 * (1.0 - self._rate_down)
                    x = a - _TAIL_FROM
                    cap = 1.0 + 3.0 * excess
                    self._excess_down += _EXCESS_RATE * ((x if x < cap else cap) - excess)
                else:
                    self._rate_down *= 0.999
                self._lograte_down = math.log(self._rate_down)
        if t is not None:
            self._acc += season + rc
            self._acc_level += level
            self._acc_abs += a if a < 3.0 else 3.0
            self._acc_n += 1
        return evidence / (1.0 + evidence)


def default_detector() -> DefaultDetector:
    """A fresh :class:`DefaultDetector` with its default hyperparameters."""
    return DefaultDetector()

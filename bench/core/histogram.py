"""A precise, cheap, mergeable latency histogram (HdrHistogram's log-linear layout, in numpy).

- Precise: 3 significant digits from 1 µs to 1 hour (values are integers in microseconds; larger
  ones are clamped to the top bucket but ``max`` stays exact).
- Cheap: ``record`` appends to a Python list; every ``FLUSH_AT`` samples numpy buckets the whole
  buffer at once, so the amortised cost is a list append plus a few nanoseconds.
- Mergeable: two histograms with the same layout add their counts; ``encode`` / ``decode`` give a
  compact JSON-safe form (zlib + base64 of the counts) that crosses processes and machines.

We keep our own rather than the ``hdrhistogram`` package because its ``record_value`` is pure Python
at about 1 µs a call, which would make the load generator the bottleneck.
"""

from __future__ import annotations

import base64
import math
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

SIGNIFICANT_DIGITS = 3
HIGHEST_US = 3_600_000_000  # one hour
FLUSH_AT = 8192
ENCODING_VERSION = 1

_SUB_BUCKET_COUNT = 2 ** math.ceil(math.log2(2 * 10**SIGNIFICANT_DIGITS))  # 2048
_SUB_HALF = _SUB_BUCKET_COUNT // 2  # 1024
_SUB_HALF_MAGNITUDE = _SUB_HALF.bit_length() - 1  # 10
_SUB_MASK = _SUB_BUCKET_COUNT - 1
_BUCKETS = max(1, (HIGHEST_US // _SUB_BUCKET_COUNT).bit_length() + 1)
COUNTS_LEN = (_BUCKETS + 1) * _SUB_HALF


def _indexes(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Counts-array index of each value (vectorised HdrHistogram ``counts_index_for``)."""
    _, exponent = np.frexp((values | _SUB_MASK).astype(np.float64))  # bit_length, exact below 2**53
    bucket = exponent.astype(np.int64) - (_SUB_HALF_MAGNITUDE + 1)
    sub = values >> bucket
    indexes: npt.NDArray[np.int64] = ((bucket + 1) << _SUB_HALF_MAGNITUDE) + (sub - _SUB_HALF)
    return indexes


def _lowest_values(indexes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    bucket = (indexes >> _SUB_HALF_MAGNITUDE) - 1
    sub = (indexes & (_SUB_HALF - 1)) + _SUB_HALF
    below = bucket < 0
    sub = np.where(below, sub - _SUB_HALF, sub)
    bucket = np.where(below, 0, bucket)
    lowest: npt.NDArray[np.int64] = sub << bucket
    return lowest


def _highest_values(indexes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The highest value that falls into each bucket (what HdrHistogram reports for a percentile)."""
    bucket = np.maximum((indexes >> _SUB_HALF_MAGNITUDE) - 1, 0)
    highest: npt.NDArray[np.int64] = _lowest_values(indexes) + (np.int64(1) << bucket) - 1
    return highest


class Histogram:
    """Latency samples in microseconds. Not thread-safe; one per process (gevent is fine)."""

    __slots__ = ("_buffer", "_counts", "_max", "_min", "_sum", "_total")

    def __init__(self) -> None:
        self._counts = np.zeros(COUNTS_LEN, dtype=np.int64)
        self._buffer: list[int] = []
        self._total = 0
        self._sum = 0.0
        self._min = 0
        self._max = 0

    # -- recording (hot path) --------------------------------------------------------------

    def record(self, value_us: int) -> None:
        """Record one sample; negative values count as 0."""
        buffer = self._buffer
        buffer.append(value_us)
        if len(buffer) >= FLUSH_AT:
            self._flush()

    def record_many(self, values_us: list[int]) -> None:
        self._buffer.extend(values_us)
        if len(self._buffer) >= FLUSH_AT:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        values = np.asarray(self._buffer, dtype=np.int64)
        self._buffer = []
        np.clip(values, 0, None, out=values)
        low, high = int(values.min()), int(values.max())
        self._min = low if self._total == 0 else min(self._min, low)
        self._max = max(self._max, high)
        self._total += values.size
        self._sum += float(values.sum())
        np.minimum(values, HIGHEST_US, out=values)
        self._counts += np.bincount(_indexes(values), minlength=COUNTS_LEN)

    # -- reading ---------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return self._total + len(self._buffer)

    def percentile(self, p: float) -> float:
        """Value (µs) at percentile ``p`` in [0, 100]: the top of the bucket holding that rank."""
        return float(self.percentiles([p])[0])

    def percentiles(self, ps: list[float]) -> list[float]:
        self._flush()
        if self._total == 0:
            return [0.0 for _ in ps]
        cumulative = np.cumsum(self._counts)
        out = []
        for p in ps:
            rank = max(1, math.ceil(min(max(p, 0.0), 100.0) / 100.0 * self._total))
            index = int(np.searchsorted(cumulative, rank))
            top = int(_highest_values(np.array([index], dtype=np.int64))[0])
            out.append(float(min(max(top, self._min), self._max)))
        return out

    @property
    def min(self) -> int:
        self._flush()
        return self._min

    @property
    def max(self) -> int:
        self._flush()
        return self._max

    @property
    def mean(self) -> float:
        self._flush()
        return self._sum / self._total if self._total else 0.0

    def summary_ms(self) -> dict[str, float | int]:
        """``{count,min,mean,p50,p90,p99,p99_9,max}`` in milliseconds (the result.json form)."""
        p50, p90, p99, p999 = self.percentiles([50, 90, 99, 99.9])
        return {
            "count": self.count,
            "min": self.min / 1000,
            "mean": round(self.mean / 1000, 6),
            "p50": p50 / 1000,
            "p90": p90 / 1000,
            "p99": p99 / 1000,
            "p99_9": p999 / 1000,
            "max": self.max / 1000,
        }

    def distribution(self) -> list[tuple[float, float]]:
        """(percentile, value µs) at every non-empty bucket, for HdrHistogram-style percentile plots."""
        self._flush()
        nonzero = np.nonzero(self._counts)[0]
        if nonzero.size == 0:
            return []
        cumulative = np.cumsum(self._counts[nonzero])
        tops = np.minimum(_highest_values(nonzero.astype(np.int64)), self._max)
        return [(100.0 * c / self._total, float(v)) for c, v in zip(cumulative, tops, strict=True)]

    def buckets(self) -> list[tuple[int, int]]:
        """(highest value µs, count) of every non-empty bucket, for feeding other stats (e.g. Locust's)."""
        tops, counts = self.bucket_arrays()
        return [(int(v), int(c)) for v, c in zip(tops, counts, strict=True)]

    def bucket_arrays(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``buckets()`` as two arrays (highest values µs, counts), for vectorised regrouping."""
        self._flush()
        nonzero = np.nonzero(self._counts)[0]
        tops: npt.NDArray[np.int64] = np.minimum(_highest_values(nonzero.astype(np.int64)), self._max)
        return tops, self._counts[nonzero]

    # -- merging and encoding --------------------------------------------------------------

    def merge(self, other: Histogram) -> Histogram:
        """Add ``other``'s samples into this one; returns self."""
        self._flush()
        other._flush()
        if other._total == 0:
            return self
        self._min = other._min if self._total == 0 else min(self._min, other._min)
        self._max = max(self._max, other._max)
        self._total += other._total
        self._sum += other._sum
        self._counts += other._counts
        return self

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def encode(self) -> dict[str, Any]:
        """A JSON-safe form; ``Histogram.decode(h.encode())`` gives the same histogram."""
        self._flush()
        raw = zlib.compress(self._counts.astype("<i8").tobytes(), 1)  # level 6: 5x the time, 25 % smaller
        return {
            "v": ENCODING_VERSION,
            "unit": "us",
            "digits": SIGNIFICANT_DIGITS,
            "count": self._total,
            "min": self._min,
            "max": self._max,
            "sum": self._sum,
            "counts": base64.b64encode(raw).decode("ascii"),
        }

    @classmethod
    def decode(cls, data: dict[str, Any]) -> Histogram:
        if data.get("v") != ENCODING_VERSION or data.get("digits") != SIGNIFICANT_DIGITS:
            raise ValueError(f"unsupported histogram encoding {data.get('v')!r}")
        hist = cls()
        counts = np.frombuffer(zlib.decompress(base64.b64decode(data["counts"])), dtype="<i8")
        if counts.size != COUNTS_LEN:
            raise ValueError("histogram counts have the wrong length")
        hist._counts = counts.astype(np.int64)
        hist._total = int(data["count"])
        hist._min = int(data["min"])
        hist._max = int(data["max"])
        hist._sum = float(data["sum"])
        return hist

"""Inference speed of anything that maps texts to probabilities: texts per second at a batch
size (length-sorted batches, tokenising included: what a caller waits for) and the latency of a
single text. Timings are wall-clock after one warm-up pass, on the threads the caller set."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Probabilities = Callable[[Sequence[str], int], np.ndarray]  # (texts, batch_size) -> (n, labels)


@dataclass(frozen=True)
class Speed:
    texts_per_s_batch1: float
    texts_per_s_batch64: float
    latency_p50_ms: float
    latency_p95_ms: float


def texts_per_second(
    predict: Probabilities, texts: Sequence[str], batch_size: int, repeats: int = 1
) -> float:
    """Best of `repeats` timed passes over `texts` (the fastest pass is the least disturbed one)."""
    predict(
        texts[: max(batch_size, 8)], batch_size
    )  # warm-up: first-call allocations, thread pools
    best = min(_timed(lambda: predict(texts, batch_size)) for _ in range(repeats))
    return len(texts) / best


def single_text_latencies(predict: Probabilities, texts: Sequence[str]) -> np.ndarray:
    """Seconds per call of one text, for each text in turn."""
    predict(texts[:1], 1)
    return np.array([_timed(lambda t=t: predict([t], 1)) for t in texts])


def measure_speed(
    predict: Probabilities, texts: Sequence[str], n_single: int = 200, repeats: int = 3
) -> Speed:
    """Batch-1 and batch-64 throughput and single-text p50/p95 latency; the single-text figures
    use the first `n_single` texts, the batch-64 figure all of them."""
    latencies = single_text_latencies(predict, texts[:n_single])
    return Speed(
        texts_per_s_batch1=len(latencies) / float(latencies.sum()),
        texts_per_s_batch64=texts_per_second(predict, texts, 64, repeats),
        latency_p50_ms=float(np.percentile(latencies, 50) * 1000),
        latency_p95_ms=float(np.percentile(latencies, 95) * 1000),
    )


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start

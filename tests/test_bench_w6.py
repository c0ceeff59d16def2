"""The arithmetic of the W6 scale bench: the fetch makespan of N delayed fetches on C workers, and the
concurrency it computes (never measures) for an hourly budget."""

from __future__ import annotations

from bench.w6_scale import makespan, needed_concurrency


def test_fetches_are_handed_to_the_next_free_worker_in_order() -> None:
    assert makespan([], 4) == 0.0
    assert makespan([100.0, 10.0, 10.0, 10.0], 1) == 130.0
    assert makespan([100.0, 10.0, 10.0, 10.0], 2) == 100.0  # the short ones all go to the second worker
    assert makespan([50.0, 50.0, 50.0], 2) == 100.0
    assert makespan([12.0, 127.0], 8) == 127.0


def test_the_concurrency_that_keeps_worst_case_fetch_waves_inside_the_budget() -> None:
    # 3300 s budget, 300 s for the rest of the cycle: floor(3000 / 127) = 23 waves of fetches
    assert needed_concurrency(100, 300.0, 127.0, 3300.0) == 5
    assert needed_concurrency(1000, 300.0, 127.0, 3300.0) == 44
    assert needed_concurrency(23, 300.0, 127.0, 3300.0) == 1
    assert needed_concurrency(10, 3200.0, 127.0, 3300.0) is None  # the rest alone leaves no room for a fetch

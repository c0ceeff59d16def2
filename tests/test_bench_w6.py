"""The arithmetic of the W6 scale bench: the fetch makespan of N delayed fetches on C workers, and the
concurrency it computes (never measures) for an hourly budget."""

from __future__ import annotations

from bench.w6_scale import makespan, needed_concurrency, stations_held


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


def test_the_station_count_one_machine_holds_counts_fetch_waves_and_per_station_work() -> None:
    # 1 worker, 100 s fetches, no other work: 33 fetches fit in 3300 s, the 34th does not
    assert stations_held(0.0, 100.0, 1, 3300.0) == 33
    # 10 workers, 127 s fetches, 5 s of work per station: the largest N with ceil(N/10) * 127 + 5 N <= 3300
    held = stations_held(5.0, 127.0, 10, 3300.0)
    assert held * 5.0 + -(-held // 10) * 127.0 <= 3300.0 < (held + 1) * 5.0 + -(-(held + 1) // 10) * 127.0
    assert stations_held(4000.0, 127.0, 4, 3300.0) == 0  # one station's work alone does not fit

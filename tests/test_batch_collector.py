"""A batch's collector settings are the batch's own: the program's come back after it."""

from __future__ import annotations

import gc
import threading

from flowrun.batch.collector import YOUNG, batch_collector


def test_settings_come_back_after_nested_and_overlapping_batches() -> None:
    before = gc.get_threshold()
    with batch_collector():
        assert gc.get_threshold()[0] == YOUNG
        assert gc.get_freeze_count() > 0  # what existed before the batch is left alone
        with batch_collector():
            assert gc.get_threshold()[0] == YOUNG
        assert gc.get_threshold()[0] == YOUNG  # the outer batch is still running
        inner_started, outer_ends = threading.Event(), threading.Event()

        def other_batch() -> None:
            with batch_collector():
                inner_started.set()
                outer_ends.wait(10)

        thread = threading.Thread(target=other_batch)
        thread.start()
        inner_started.wait(10)
    assert gc.get_threshold()[0] == YOUNG  # the other thread's batch runs on
    outer_ends.set()
    thread.join(10)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_batch_api_run_takes_its_own_young_threshold_and_gives_it_back() -> None:
    from flowrun.batch.collector import BATCH_API_YOUNG

    before = gc.get_threshold()
    with batch_collector(BATCH_API_YOUNG):
        assert gc.get_threshold() == (BATCH_API_YOUNG, before[1], before[2])
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0

"""The worker classes: what they do before their first job."""

from __future__ import annotations

import gc

from campaigns.outbox.queueing import LANES, get_queue
from campaigns.workers import SimpleWorker


def test_a_worker_freezes_what_is_loaded_before_its_first_job(redis_connection):
    """Django and the apps, loaded by the time the work loop starts, are moved out of the
    cyclic collector's reach: a batch's allocations then trigger collections that walk only
    what the jobs made."""
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        worker = SimpleWorker([get_queue(lane) for lane in LANES], connection=redis_connection)
        worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()

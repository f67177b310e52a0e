"""The garbage collector after start-up: what exists is frozen out, collections run less often."""

import gc

from shopkit.app import tune_garbage_collector


def test_start_up_objects_leave_collection_and_later_ones_do_not() -> None:
    threshold = gc.get_threshold()
    try:
        built_at_start_up = [object()]
        tune_garbage_collector(5_000)
        made_later = [object()]

        tracked = {id(o) for o in gc.get_objects()}  # the collected generations only
        assert id(built_at_start_up) not in tracked
        assert id(made_later) in tracked
        assert gc.get_threshold() == (5_000, threshold[1], threshold[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)

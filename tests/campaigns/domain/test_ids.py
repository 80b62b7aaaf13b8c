"""Message UUIDs are version 7: time first, so rows written together sit together in the
unique index (and a Message-ID still says nothing but a random-looking id)."""

from __future__ import annotations

import time
import uuid

from campaigns.domain.ids import uuid7, uuid7_batch


def test_a_uuid7_is_an_rfc_9562_version_7_uuid_with_the_time_in_front():
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert (value.version, value.variant) == (7, uuid.RFC_4122)
    assert before <= value.int >> 80 <= after
    assert uuid.UUID(str(value)) == value


def test_uuid7s_sort_by_time_and_do_not_repeat():
    first = [uuid7() for _ in range(2000)]
    time.sleep(0.002)
    second = [uuid7() for _ in range(2000)]
    assert len(set(first + second)) == 4000
    assert max(first) < min(second)  # a later millisecond sorts after
    assert len({value.int & ((1 << 62) - 1) for value in first}) == 2000  # random low bits


def test_a_batch_of_uuid7s_is_as_many_version_7_uuids_of_its_millisecond():
    before = time.time_ns() // 1_000_000
    batch = uuid7_batch(5000)
    after = time.time_ns() // 1_000_000
    assert len(batch) == len(set(batch)) == 5000
    assert {(value.version, value.variant) for value in batch} == {(7, uuid.RFC_4122)}
    assert len({value.int >> 80 for value in batch}) == 1
    assert before <= batch[0].int >> 80 <= after
    random_bits = [value.int & ((1 << 62) - 1) for value in batch]
    assert len(set(random_bits)) == 5000
    # each of the 62 low random bits is set in about half of them
    for bit in range(62):
        share = sum(1 for bits in random_bits if bits >> bit & 1) / len(random_bits)
        assert 0.45 < share < 0.55, bit
    assert uuid7_batch(0) == []

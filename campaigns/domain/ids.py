"""Message ids that sort by time.

A message's UUID (its public id, in links and ``Message-ID`` headers) is a version 7 UUID
(RFC 9562): 48 bits of Unix milliseconds, then random bits. Rows written together get ids
close together, so its unique index is written at its right edge, as a sequence's is, instead
of at a random page for every row (a random UUIDv4 dirties a page of the index per insert)."""

from __future__ import annotations

import os
import time
import uuid

#: The version (7) and the RFC 4122 variant, and the bits they take.
_MARKS = (0x7 << 76) | (0x2 << 62)
_UNMARKED = ~((0xF << 76) | (0x3 << 62))


def uuid7() -> uuid.UUID:
    """A new version 7 UUID: millisecond time, then 74 random bits."""
    return uuid7_batch(1)[0]


def uuid7_batch(count: int) -> list[uuid.UUID]:
    """``count`` new version 7 UUIDs of this millisecond, from one read of random bytes (a
    fan-out makes one per message: a read each cost more than the rest of making it)."""
    moment = (time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF) << 80
    randomness = os.urandom(10 * count)
    read = int.from_bytes
    return [
        uuid.UUID(int=(moment | read(randomness[at : at + 10], "big")) & _UNMARKED | _MARKS)
        for at in range(0, 10 * count, 10)
    ]

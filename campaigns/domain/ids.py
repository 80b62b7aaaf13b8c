"""Message ids that sort by time.

A message's UUID (its public id, in links and ``Message-ID`` headers) is a version 7 UUID
(RFC 9562): 48 bits of Unix milliseconds, then random bits. Rows written together get ids
close together, so its unique index is written at its right edge, as a sequence's is, instead
of at a random page for every row (a random UUIDv4 dirties a page of the index per insert)."""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """A new version 7 UUID: millisecond time, then 74 random bits."""
    value = (time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF) << 80
    value |= int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # the RFC 4122 variant
    return uuid.UUID(int=value)

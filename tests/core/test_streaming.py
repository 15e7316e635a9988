"""The core's copy pump: what it hands the target's ``write_at``."""

from __future__ import annotations

import os

from encompass_core.drivers import streaming

MIB = 1 << 20


def test_the_pump_hands_its_target_the_chunk_the_target_asks_for() -> None:
    source = bytearray(os.urandom(40 * MIB))
    source[20 * MIB:24 * MIB] = bytes(4 * MIB)  # a zero run inside: not written, left a hole
    target = bytearray(len(source))
    writes: list[tuple[int, int]] = []

    def read_into(offset: int, view: memoryview) -> None:
        view[:] = source[offset:offset + len(view)]

    def write_at(offset: int, data: memoryview) -> None:
        writes.append((offset, len(data)))
        target[offset:offset + len(data)] = data

    written = streaming.pump(read_into, iter([(0, len(source))]), write_at, len(source),
                             readers=1, chunk=16 * MIB)

    assert target == source
    assert written == 36 * MIB
    assert writes == [(0, 16 * MIB), (16 * MIB, 4 * MIB), (24 * MIB, 8 * MIB), (32 * MIB, 8 * MIB)]

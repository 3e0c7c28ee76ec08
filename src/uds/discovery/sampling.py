"""Which pages a `TABLESAMPLE SYSTEM (p) REPEATABLE (seed)` scan draws, worked out in UDS.

A page sample sees only live rows: a page holding nothing but dead row versions (after a
mass UPDATE or DELETE, before VACUUM) is drawn but returns nothing, so "pages that
returned rows" undercounts the pages drawn, and rows seen / share of pages drawn comes
out too high: twice the truth when half the table is dead. The estimate must divide by the
pages actually drawn, empty ones included.

PostgreSQL decides page by page, independently of the page's content: block b is drawn
when hash_any(b, s) < cutoff, where hash_any is Bob Jenkins' lookup3 hash of the two
32-bit words (b, s) in machine order, s is hashfloat8(seed) (the same hash of the eight
bytes of the float8 seed) and cutoff = rint(2^32 * p / 100) (tsm_system.c and
nodeSamplescan.c). For eight bytes the hash is one `final` mix of three words, so UDS can
list the drawn blocks itself: about 3 us a block in pure Python, which is why it is only
done for small tables, or when a sample or pg_stat's dead-row count suggests drawn
pages came back empty (see `profiles._drawn_share`).

This assumes a little-endian server (x86-64 and ARM64 servers are): `drawn_share` checks
that every page that returned rows is among the blocks it predicts, and gives up (None)
otherwise.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable

_MASK = 0xFFFFFFFF
_INIT = (0x9E3779B9 + 8 + 3923095) & _MASK
# Beyond this many blocks the exact count costs more than it is worth (about 1 s); the
# share of pages asked for stands in (its relative noise there is well under 1 %).
MAX_COUNTED_BLOCKS = 400_000
# Up to this many blocks (40 MB at 8 kB) the drawn pages are always counted (under 20 ms):
# emptied pages left behind by a VACUUM leave no trace in pg_stat.
ALWAYS_COUNTED_BLOCKS = 5_000


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def hash_two_words(k0: int, k1: int) -> int:
    """lookup3's hash of two 32-bit words (eight aligned bytes): one final mix."""
    a = (_INIT + k0) & _MASK
    b = (_INIT + k1) & _MASK
    c = _INIT
    c ^= b
    c = (c - _rot(b, 14)) & _MASK
    a ^= c
    a = (a - _rot(c, 11)) & _MASK
    b ^= a
    b = (b - _rot(a, 25)) & _MASK
    c ^= b
    c = (c - _rot(b, 16)) & _MASK
    a ^= c
    a = (a - _rot(c, 4)) & _MASK
    b ^= a
    b = (b - _rot(a, 14)) & _MASK
    c ^= b
    c = (c - _rot(b, 24)) & _MASK
    return c


def seed_hash(seed: float) -> int:
    """hashfloat8(seed) as an unsigned 32-bit number (what REPEATABLE turns the seed into)."""
    seed = float(seed)
    if seed == 0.0:
        seed = 0.0  # -0 hashes like +0
    low, high = struct.unpack("<II", struct.pack("<d", seed))
    return hash_two_words(low, high)


def cutoff(percent: float) -> int:
    """The hash threshold for a sampling percentage (rint rounds half to even, like round)."""
    return round((_MASK + 1) * percent / 100.0)


def drawn_blocks(blocks: int, *, percent: float, seed: float) -> list[int]:
    """The block numbers below `blocks` that SYSTEM (percent) REPEATABLE (seed) draws."""
    s = seed_hash(seed)
    limit = cutoff(percent)
    return [b for b in range(blocks) if hash_two_words(b, s) < limit]


def drawn_pages(
    blocks: dict[int, int],
    seen: Iterable[int],
    *,
    percent: float,
    seed: float,
    upto: int | None = None,
) -> tuple[list[int], int] | None:
    """(page ids drawn, sorted; pages in all) over the relations in `blocks` (relation key
    -> its block count; the key is the high 32 bits of a page id in `seen`, 0 for a plain
    table), or None when the prediction does not cover what was seen (a big-endian
    server) or there are too many blocks to count. `upto`: a row cap stopped the scan of a
    plain table at this block; only the blocks up to it were looked at."""
    total = sum(blocks.values())
    if total <= 0 or total > MAX_COUNTED_BLOCKS:
        return None
    s = seed_hash(seed)
    limit = cutoff(percent)
    predicted: list[int] = []
    for relation, count in sorted(blocks.items()):
        base = relation << 32
        if upto is not None:
            count = min(count, upto + 1)
        predicted.extend(base + b for b in range(count) if hash_two_words(b, s) < limit)
    if not set(seen) <= set(predicted):
        return None
    return predicted, total


def drawn_share(
    blocks: dict[int, int],
    seen: Iterable[int],
    *,
    percent: float,
    seed: float,
    upto: int | None = None,
) -> tuple[float, int, int] | None:
    """(share of pages drawn, pages drawn, pages in all); see drawn_pages."""
    found = drawn_pages(blocks, seen, percent=percent, seed=seed, upto=upto)
    if found is None:
        return None
    predicted, total = found
    return len(predicted) / total, len(predicted), total


def rows_by_region(
    drawn: list[int], rows_on: dict[int, int], blocks: dict[int, int], *, group: int = 8
) -> float:
    """Live rows of the relations in `blocks`, estimated region by region along each one:
    the drawn pages (empty ones included, in block order) are taken `group` at a time, and
    each group's mean live rows per page stands for the blocks between the midpoints to
    its neighbours. After a mass UPDATE or DELETE the live rows sit in some stretches of a
    table and not in others; a single mean over all drawn pages is then as noisy as the
    number of live pages drawn, while this follows the stretches (post-stratification by
    block number). On a table whose rows are spread evenly it agrees with the single mean."""
    total = 0.0
    for relation, count in blocks.items():
        base = relation << 32
        pages = [p - base for p in drawn if p >> 32 == relation]
        if count <= 0 or not pages:
            continue
        groups = [pages[i : i + group] for i in range(0, len(pages), group)]
        if len(groups) > 1 and len(groups[-1]) < group // 2:
            groups[-2].extend(groups.pop())
        for i, members in enumerate(groups):
            start = 0.0 if i == 0 else (groups[i - 1][-1] + members[0]) / 2
            end = float(count) if i == len(groups) - 1 else (members[-1] + groups[i + 1][0]) / 2
            mean = sum(rows_on.get(base + p, 0) for p in members) / len(members)
            total += mean * (end - start)
    return total


def empties_likely(seen_pages: int, total_pages: int, percent: float) -> bool:
    """Whether the pages that returned rows are fewer than a SYSTEM sample of `percent`
    draws by more than chance (three standard deviations of the binomial count, plus 2)."""
    if total_pages <= 0:
        return False
    p = min(1.0, percent / 100.0)
    expected = p * total_pages
    return seen_pages < expected - 3 * math.sqrt(expected * (1 - p)) - 2

"""Deterministic test data whose values carry a sequence number and check themselves."""

from __future__ import annotations

import hashlib
import random
import string
from collections import defaultdict

from kafka_clients import Rec

_ALPHABET = (string.ascii_letters + string.digits + " .,;:_-+=/").encode()


def make_value(seq: int, filler: bytes = b"") -> bytes:
    """`<seq>|<sha1 prefix>|<filler>`: any corruption or truncation is detectable."""
    digest = hashlib.sha1(b"%d|%s" % (seq, filler)).hexdigest()[:12].encode()
    return b"%08d|%s|%s" % (seq, digest, filler)


def check_value(value: bytes) -> int:
    """Return the sequence number of a value made by make_value; raise if it is garbled."""
    seq_s, digest, filler = value.split(b"|", 2)
    seq = int(seq_s)
    assert hashlib.sha1(b"%d|%s" % (seq, filler)).hexdigest()[:12].encode() == digest, (
        f"garbled value: {value[:80]!r}")
    return seq


def keyed_records(n: int, keys: int = 97, seed: int = 1234, max_filler: int = 150) -> list[Rec]:
    """n keyed records, printable (usable with kcat), values of varying length."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        filler = bytes(rng.choice(_ALPHABET) for _ in range(rng.randint(0, max_filler)))
        out.append(Rec(key=b"key-%03d" % (i % keys), value=make_value(i, filler)))
    return out


def check_round_trip(produced: list[Rec], consumed: list[Rec], partitions: int) -> None:
    """Exact payloads, per-partition order, contiguous offsets, one partition per key."""
    assert len(consumed) == len(produced), f"consumed {len(consumed)} of {len(produced)} records"
    assert sorted((r.key, r.value) for r in consumed) == sorted((r.key, r.value) for r in produced), (
        "consumed payloads differ from produced payloads")
    by_partition: dict[int, list[Rec]] = defaultdict(list)
    key_partition: dict[bytes, int] = {}
    for r in consumed:
        by_partition[r.partition].append(r)
        assert key_partition.setdefault(r.key, r.partition) == r.partition, (
            f"key {r.key!r} found in partitions {key_partition[r.key]} and {r.partition}")
    assert set(by_partition) == set(range(partitions)), f"partitions used: {sorted(by_partition)}"
    for p, recs in by_partition.items():
        offsets = [r.offset for r in recs]
        assert offsets == list(range(len(recs))), f"partition {p}: offsets not 0..{len(recs) - 1} in order"
        seqs = [check_value(r.value) for r in recs]
        assert seqs == sorted(seqs), f"partition {p}: records out of produce order"

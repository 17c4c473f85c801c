"""Consumer-group and compaction benchmark of the Fjord broker (issue 3).

(a) OffsetCommit round trips per second from one group: synchronous commits from one subscribed
    confluent-kafka consumer for --commit-seconds, and pipelined raw OffsetCommit v2 requests
    (kafka-python's protocol classes) written --pipeline-depth at a time on one socket.
(b) Rebalance time for --members confluent-kafka consumers joining one group (one thread each):
    from the first subscribe() until every member has a non-empty assignment, with
    group.initial.rebalance.delay.ms=0 and with the default (3000).
(c) Compaction throughput: --compact-mb of keyed records (--keys keys, 1000-byte values) produced
    to a one-partition compacted topic (segment.bytes 8 MiB, min.cleanable.dirty.ratio=0.01) with
    the cleaner idle (log.cleaner.backoff.ms=3600000); then the broker is restarted on the same
    data dir with log.cleaner.backoff.ms=1000 and the cleaner's "cleaned log" INFO lines (bytes
    before/after) are timed: the first pass starts one backoff after "serving Kafka clients".

Prints a Markdown section. Uses the broker fixture class and client helpers of tests/interop.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "interop"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from conftest import Broker  # noqa: E402
from kafka_clients import create_topic, raw_pipeline, unique, wait_until  # noqa: E402
from test_groups import Member, group_conf  # noqa: E402


def log(msg: str) -> None:
    print(f"[bench-groups] {msg}", file=sys.stderr, flush=True)


# -- (a) commits ---------------------------------------------------------------------------------

def bench_sync_commits(broker: Broker, seconds: float) -> tuple[int, float]:
    topic, group = unique("commits"), unique("g")
    create_topic(broker.bootstrap, topic, partitions=1)
    c = Consumer(group_conf(broker.bootstrap, group))
    assigned = []
    c.subscribe([topic], on_assign=lambda _c, ps: assigned.extend(ps))
    deadline = time.monotonic() + 30
    while not assigned:
        c.poll(0.1)
        assert time.monotonic() < deadline, "no assignment within 30 s"
    n = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        c.commit(offsets=[TopicPartition(topic, 0, n)], asynchronous=False)
        n += 1
        if n % 1000 == 0:
            c.poll(0)  # serve callbacks/heartbeats bookkeeping
    took = time.monotonic() - t0
    c.close()
    return n, took


def bench_pipelined_commits(broker: Broker, total: int, depth: int) -> tuple[int, float]:
    from kafka.protocol.commit import OffsetCommitRequest

    topic, group = unique("commits"), unique("g")
    create_topic(broker.bootstrap, topic, partitions=1)
    batches = []
    for start in range(0, total, depth):
        batches.append([OffsetCommitRequest[2](consumer_group=group, consumer_group_generation_id=-1,
                                               consumer_id="", retention_time=-1,
                                               topics=[(topic, [(0, i, "")])])
                        for i in range(start, min(total, start + depth))])
    t0 = time.monotonic()
    for reqs in batches:
        for resp in raw_pipeline(broker.bootstrap, reqs, timeout=120):
            [(_, [(_p, code)])] = resp.topics
            assert code == 0, f"OffsetCommit error {code}"
    return total, time.monotonic() - t0


# -- (b) rebalance ---------------------------------------------------------------------------------

def bench_rebalance(broker: Broker, members: int) -> float:
    topic, group = unique("rebalance"), unique("g")
    create_topic(broker.bootstrap, topic, partitions=members)
    t0 = time.monotonic()
    ms = [Member(broker.bootstrap, group, topic) for _ in range(members)]
    try:
        wait_until(lambda: all(m.snapshot() for m in ms), timeout=120, interval=0.01,
                   message=f"{members} members with a non-empty assignment")
        return time.monotonic() - t0
    finally:
        for m in ms:
            m.close()


# -- (c) compaction ------------------------------------------------------------------------------

TS_RE = re.compile(r"^(\S+Z)\s")
CLEANED_RE = re.compile(r"bytes_before=(\d+) bytes_after=(\d+)")


def parse_ts(line: str) -> float:
    m = TS_RE.match(line)
    s = m.group(1)
    # 2026-11-25T07:31:18.158513Z -> seconds since epoch
    base, frac = s[:-1].split(".") if "." in s else (s[:-1], "0")
    return datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").timestamp() + float("0." + frac)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def bench_compaction(fjord_args, mb: int, keys: int, segment_bytes: int) -> dict:
    broker = Broker({"log.cleaner.backoff.ms": 3_600_000}, **fjord_args)
    broker.start()
    try:
        topic = unique("compact")
        create_topic(broker.bootstrap, topic, partitions=1, config={
            "cleanup.policy": "compact", "segment.bytes": str(segment_bytes),
            "min.cleanable.dirty.ratio": "0.01"})
        value_size = 1000
        count = mb * 1_000_000 // value_size
        blob = os.urandom(value_size * 4)
        p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                      "acks": 1, "queue.buffering.max.kbytes": 512 * 1024, "enable.idempotence": False})
        t0 = time.monotonic()
        for i in range(count):
            off = (i * 7) % (value_size * 3)
            while True:
                try:
                    p.produce(topic, key=b"key-%06d" % (i % keys), value=blob[off:off + value_size], partition=0)
                    break
                except BufferError:
                    p.poll(0.05)
        assert p.flush(300) == 0
        del p  # no reconnect noise from an idle producer across the restart
        produce_s = time.monotonic() - t0
        pdir = broker.partition_dir(topic, 0)
        before = dir_bytes(pdir)
        log(f"compaction: produced {count} records ({before / 1e6:.0f} MB on disk) in {produce_s:.1f}s")
        broker.stop()
        broker.overrides["log.cleaner.backoff.ms"] = "1000"
        err_offset = broker.stderr_path.stat().st_size
        broker.start_again()
        # Wait until the log stops shrinking: a cleaned pass, then two quiet backoffs.
        last_size, last_change = dir_bytes(pdir), time.monotonic()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            time.sleep(0.2)
            size = dir_bytes(pdir)
            if size != last_size:
                last_size, last_change = size, time.monotonic()
            text = broker.stderr_path.read_bytes()[err_offset:].decode("utf-8", "replace")
            if "cleaned log" in text and time.monotonic() - last_change > 3.0:
                break
        lines = broker.stderr_path.read_bytes()[err_offset:].decode("utf-8", "replace").splitlines()
        serving = next(parse_ts(l) for l in lines if "serving Kafka clients" in l)
        passes = [(parse_ts(l), *map(int, CLEANED_RE.search(l).groups()))
                  for l in lines if "cleaned log" in l and topic in l]
        assert passes, "the cleaner logged no pass"
        start = serving + 1.0  # first tick of the cleaner: one backoff after start
        end = passes[-1][0]
        cleaned_before = sum(b for _, b, _ in passes)
        cleaned_after = sum(a for _, _, a in passes)
        return {
            "records": count, "keys": keys, "on_disk_before": before, "on_disk_after": dir_bytes(pdir),
            "passes": len(passes), "cleaned_before": cleaned_before, "cleaned_after": cleaned_after,
            "seconds": end - start, "mbps": cleaned_before / 1e6 / (end - start),
            "produce_s": produce_s,
            "pass_lines": [l for l in lines if "cleaned log" in l and topic in l],
        }
    finally:
        broker.close()


# -- report --------------------------------------------------------------------------------------

def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except Exception:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}){mem}, Linux {platform.release()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fjord", default=os.environ.get("FJORD_BIN") or str(
        Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache" / "fjord-target") / "release" / "fjord"))
    ap.add_argument("--commit-seconds", type=float, default=10)
    ap.add_argument("--pipelined", type=int, default=200_000, help="raw OffsetCommit requests")
    ap.add_argument("--pipeline-depth", type=int, default=1000)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--rebalance-repeat", type=int, default=3)
    ap.add_argument("--compact-mb", type=int, default=300)
    ap.add_argument("--keys", type=int, default=2000)
    ap.add_argument("--segment-bytes", type=int, default=8 * 1024 * 1024)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: commits,rebalance,compaction")
    args = ap.parse_args()
    os.environ["FJORD_BIN"] = args.fjord
    skip = set(filter(None, args.skip.split(",")))
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    out = [f"## Consumer groups and compaction (issue 3), {datetime.now():%Y-%m-%d}, Fjord {rev}", "",
           f"Machine: {machine()}. Broker: release build (`{args.fjord}`), data dir on the local disk; "
           "clients (confluent-kafka / librdkafka, kafka-python protocol classes) in the same machine over "
           "loopback. Reproduce: `scripts/bench-groups` (runs `bench/groups.py` with the .venv).", ""]
    fjord_args = {}

    if "commits" not in skip:
        b = Broker({"group.initial.rebalance.delay.ms": 0}).start()
        try:
            n, s = bench_sync_commits(b, args.commit_seconds)
            log(f"sync commits: {n} in {s:.1f}s")
            pn, ps = bench_pipelined_commits(b, args.pipelined, args.pipeline_depth)
            log(f"pipelined commits: {pn} in {ps:.1f}s")
        finally:
            b.close()
        out += ["### OffsetCommit round trips (one group)", "",
                "| client | commits | seconds | commits/s |", "|---|---:|---:|---:|",
                f"| confluent-kafka `commit(offsets=..., asynchronous=False)` loop, one subscribed member "
                f"| {n:,} | {s:.1f} | {n / s:,.0f} |",
                f"| raw OffsetCommit v2, {args.pipeline_depth} pipelined per socket write (standalone, "
                f"generation -1) | {pn:,} | {ps:.1f} | {pn / ps:,.0f} |", "",
                "Broker: `fjord broker --override group.initial.rebalance.delay.ms=0`; one partition, "
                "each commit a distinct offset (one `__consumer_offsets` record each).", ""]

    if "rebalance" not in skip:
        rows = []
        for delay in (0, 3000):
            times = []
            b = Broker({"group.initial.rebalance.delay.ms": delay}).start()
            try:
                for _ in range(args.rebalance_repeat):
                    t = bench_rebalance(b, args.members)
                    log(f"rebalance {args.members} members, delay {delay}: {t:.2f}s")
                    times.append(t)
            finally:
                b.close()
            rows.append((delay, times))
        out += [f"### Rebalance: {args.members} members joining one group", "",
                f"{args.members} confluent-kafka consumers (one thread each, `session.timeout.ms=6000`, "
                f"`heartbeat.interval.ms=500`, default `range,roundrobin` assignors) subscribe one after "
                f"another to a {args.members}-partition topic; time from the first `subscribe()` until every "
                f"member holds a non-empty assignment. A fresh group per run, {args.rebalance_repeat} runs.", "",
                "| group.initial.rebalance.delay.ms | median s | all runs (s) |", "|---:|---:|---|"]
        for delay, times in rows:
            out.append(f"| {delay} | {statistics.median(times):.2f} | {', '.join(f'{t:.2f}' for t in times)} |")
        out.append("")

    if "compaction" not in skip:
        r = bench_compaction(fjord_args, args.compact_mb, args.keys, args.segment_bytes)
        log(f"compaction: {r}")
        out += ["### Compaction throughput", "",
                f"{r['records']:,} records ({r['keys']:,} distinct keys, 1000-byte values, uncompressed) "
                f"produced to one partition of a topic with `cleanup.policy=compact`, "
                f"`segment.bytes={args.segment_bytes}`, `min.cleanable.dirty.ratio=0.01`, with the cleaner idle "
                "(`--override log.cleaner.backoff.ms=3600000`); then the broker restarted on the same data dir "
                "with `--override log.cleaner.backoff.ms=1000`. Time: from the cleaner's first tick (one "
                "backoff after `serving Kafka clients`) to the last `cleaned log` INFO line; bytes: the "
                "`bytes_before` of those lines.", "",
                "| log before | log after | passes | bytes cleaned (MB) | seconds | MB/s cleaned |",
                "|---:|---:|---:|---:|---:|---:|",
                f"| {r['on_disk_before'] / 1e6:.0f} MB | {r['on_disk_after'] / 1e6:.1f} MB | {r['passes']} "
                f"| {r['cleaned_before'] / 1e6:.0f} | {r['seconds']:.2f} | {r['mbps']:.0f} |", "",
                "Cleaner log lines:", "", "```"]
        out += [re.sub(r"\s+", " ", l)[:300] for l in r["pass_lines"]]
        out += ["```", ""]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

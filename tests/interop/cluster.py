"""A cluster harness: N real `fjord broker --config` processes (combined broker+controller
nodes, a KRaft-style quorum) on loopback ports, with faults (kill -9, SIGSTOP/SIGCONT,
restart) and the oracle that checks what Kafka promises after them.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections import defaultdict

from confluent_kafka.admin import AdminClient

from conftest import Broker, BrokerError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    """A TCP proxy on a free loopback port in front of `target_port`. `cut()` drops every
    connection and refuses new ones (accepted and closed at once) until `heal()`: a network
    partition of this route."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.blocked = False
        self.conns: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.blocked:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data or self.blocked:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self.lock:
                self.conns.discard(src)
                self.conns.discard(dst)

    def cut(self):
        self.blocked = True
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def heal(self):
        self.blocked = False

    def close(self):
        self.closed = True
        self.cut()
        self.listener.close()


# Fast failure detection for tests (Kafka's defaults are 9 s / 2 s / 1 s / 30 s).
FAST = {
    "broker.session.timeout.ms": 1500,
    "broker.heartbeat.interval.ms": 150,
    "controller.quorum.election.timeout.ms": 300,
    "replica.lag.time.max.ms": 3000,
    "replica.fetch.wait.max.ms": 100,
    "default.replication.factor": 3,
    "offsets.topic.num.partitions": 6,
    "group.initial.rebalance.delay.ms": 0,
}


class Cluster:
    def __init__(self, n: int = 3, overrides: dict[str, object] | None = None, proxied: bool = False):
        """`proxied`: every route between nodes goes through a `Proxy`, so `isolate()` can cut a
        node off: clients and followers reach node i's Kafka port through `kafka_proxies[i]`
        (its advertised listener), and node i reaches controller j through
        `quorum_proxies[(i, j)]` (its own `controller.quorum.voters`)."""
        self.ports = [(free_port(), free_port()) for _ in range(n)]
        self.kafka_proxies: list[Proxy] = []
        self.quorum_proxies: dict[tuple[int, int], Proxy] = {}
        if proxied:
            taken = {p for pair in self.ports for p in pair}

            def proxy(target: int) -> Proxy:
                # A proxy must not take a port just picked (and released) for a node.
                while True:
                    p = Proxy(target)
                    if p.port not in taken:
                        taken.add(p.port)
                        return p
                    p.close()

            self.kafka_proxies = [proxy(k) for k, _ in self.ports]
            for i in range(n):
                for j in range(n):
                    if i != j:
                        self.quorum_proxies[(i + 1, j + 1)] = proxy(self.ports[j][1])
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(self.ports))
        self.voters = voters
        self.overrides = overrides or {}
        self.nodes: list[Broker] = []
        for i, (kafka, controller) in enumerate(self.ports):
            node = Broker(address_flags=False)
            node_voters = voters
            extra = {}
            if proxied:
                node_voters = ",".join(
                    f"{j + 1}@127.0.0.1:{c if j == i else self.quorum_proxies[(i + 1, j + 1)].port}"
                    for j, (_, c) in enumerate(self.ports))
                extra["advertised.listeners"] = f"PLAINTEXT://127.0.0.1:{self.kafka_proxies[i].port}"
            props = {
                "node.id": i + 1,
                "process.roles": "broker,controller",
                "listeners": f"PLAINTEXT://127.0.0.1:{kafka},CONTROLLER://127.0.0.1:{controller}",
                "controller.quorum.voters": node_voters,
                **extra,
                "log.dirs": str(node.data_dir),
                **FAST,
                **(overrides or {}),
            }
            path = node._tmp / "server.properties"
            path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
            node.extra_args = ["--config", str(path)]
            self.nodes.append(node)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 30) -> "Cluster":
        for node in self.nodes:
            node.start()
        self.wait_brokers(len(self.nodes), timeout)
        return self

    def add_broker(self) -> int:
        """Starts one more node, a broker only (no controller role); returns its id."""
        node_id = len(self.nodes) + 1
        kafka = free_port()
        node = Broker(address_flags=False)
        props = {
            "node.id": node_id,
            "process.roles": "broker",
            "listeners": f"PLAINTEXT://127.0.0.1:{kafka}",
            "controller.quorum.voters": self.voters,
            "log.dirs": str(node.data_dir),
            **FAST,
            **self.overrides,
        }
        path = node._tmp / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        node.extra_args = ["--config", str(path)]
        self.ports.append((kafka, 0))
        self.nodes.append(node)
        node.start()
        return node_id

    def isolate(self, node_id: int) -> None:
        """Cuts node `node_id` off from the other nodes and from clients."""
        self.kafka_proxies[node_id - 1].cut()
        for (i, j), p in self.quorum_proxies.items():
            if node_id in (i, j):
                p.cut()

    def heal(self) -> None:
        for p in [*self.kafka_proxies, *self.quorum_proxies.values()]:
            p.heal()

    def close(self) -> None:
        for p in [*self.kafka_proxies, *self.quorum_proxies.values()]:
            p.close()
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                try:
                    node.proc.send_signal(signal.SIGCONT)
                except ProcessLookupError:
                    pass
            node.close()

    def node(self, node_id: int) -> Broker:
        return self.nodes[node_id - 1]

    def kill9(self, node_id: int) -> None:
        self.node(node_id).kill9()

    def pause(self, node_id: int) -> None:
        self.node(node_id).proc.send_signal(signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        self.node(node_id).proc.send_signal(signal.SIGCONT)

    def restart(self, node_id: int) -> None:
        node = self.node(node_id)
        if node.running:
            node.kill9()
        deadline = time.monotonic() + 15
        while True:
            try:
                node.start()
                return
            except BrokerError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    # -- views -------------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        if self.kafka_proxies:
            return ",".join(f"127.0.0.1:{p.port}" for p in self.kafka_proxies)
        return ",".join(f"127.0.0.1:{k}" for k, _ in self.ports)

    def live_bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{k}" for (k, _), n in zip(self.ports, self.nodes) if n.running)

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.live_bootstrap()})

    def metadata(self, topic: str | None = None, timeout: float = 10):
        return self.admin().list_topics(topic=topic, timeout=timeout)

    def wait_brokers(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                md = self.metadata(timeout=2)
                last = sorted(md.brokers)
                if len(md.brokers) == count:
                    return
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                last = repr(e)
            time.sleep(0.1)
        raise AssertionError(f"cluster did not show {count} live brokers within {timeout}s (last: {last})")

    def leader(self, topic: str, partition: int = 0, timeout: float = 30, not_: int | None = None) -> int:
        """The partition's leader (waiting for one, and for it to differ from `not_`)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                p = self.metadata(topic, timeout=2).topics[topic].partitions[partition]
                last = (p.leader, p.isrs, p.error)
                if p.leader > 0 and p.leader != not_:
                    return p.leader
            except Exception as e:  # noqa: BLE001
                last = repr(e)
            time.sleep(0.05)
        raise AssertionError(f"no leader for {topic}-{partition} within {timeout}s (last: {last})")

    def isr(self, topic: str, partition: int = 0) -> list[int]:
        return sorted(self.metadata(topic).topics[topic].partitions[partition].isrs)

    def wait_isr(self, topic: str, partition: int, want: list[int], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.isr(topic, partition)
                if last == sorted(want):
                    return
            except Exception as e:  # noqa: BLE001
                last = repr(e)
            time.sleep(0.1)
        raise AssertionError(f"ISR of {topic}-{partition} is {last}, wanted {sorted(want)}")


def check_log(acked: dict[tuple[int, int], bytes], log: list, seen: list | None = None) -> None:
    """The oracle. `acked` maps (partition, offset) to the value the producer was told is there;
    `log` is every record read back from the start (Rec with partition, offset, value); `seen`
    are records a consumer read during the faults.

    - every acknowledged record is present exactly at its offset;
    - offsets are contiguous from 0 in each partition (none skipped, none reused);
    - every record a consumer saw during the faults is still there, unchanged (nothing visible
      later disappeared: the high watermark never went backwards).
    """
    stored = {}
    by_partition = defaultdict(list)
    for r in log:
        key = (r.partition, r.offset)
        assert key not in stored, f"offset {key} read twice"
        stored[key] = r.value
        by_partition[r.partition].append(r.offset)
    for p, offsets in by_partition.items():
        assert offsets == list(range(len(offsets))), f"partition {p}: offsets not contiguous from 0"
    missing = [k for k in acked if k not in stored]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
    wrong = [k for k, v in acked.items() if stored[k] != v]
    assert not wrong, f"{len(wrong)} acknowledged offsets hold other values, e.g. {sorted(wrong)[:5]}"
    for r in seen or []:
        key = (r.partition, r.offset)
        assert stored.get(key) == r.value, f"record {key} seen by a consumer later vanished or changed"

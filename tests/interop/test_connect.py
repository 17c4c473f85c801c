"""Fjord Connect through the real binary: `fjord dev` serves the Kafka Connect REST API beside
the broker, and `fjord connect standalone` runs connector files against a broker."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

from conftest import fjord_bin
from kafka_clients import confluent_watermarks, create_topic, unique, wait_until

CONNECT_RE = re.compile(rb"Connect REST API on http://([0-9.]+):(\d+)")


def call(base: str, method: str, path: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, (json.loads(text) if text else None)


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def string_connector(name: str, cls: str, **config) -> dict:
    return {"name": name, "config": {"connector.class": cls,
                                     "value.converter": "org.apache.kafka.connect.storage.StringConverter",
                                     **config}}


def test_fjord_dev_serves_connect_beside_the_broker(broker_factory, tmp_path):
    dev = broker_factory(command="dev", extra_args=["--registry-addr", "127.0.0.1:0",
                                                    "--connect-addr", "127.0.0.1:0"])
    m = wait_until(lambda: CONNECT_RE.search(dev.stdout_path.read_bytes()), timeout=30,
                   message="Connect's ready line")
    base = f"http://{m.group(1).decode()}:{int(m.group(2))}"
    status, root = call(base, "GET", "/")
    assert status == 200 and root["kafka_cluster_id"], root
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("one\ntwo\n")
    topic = unique("connect-dev")
    status, body = call(base, "POST", "/connectors",
                        string_connector("src", "FileStreamSource", file=str(src), topic=topic))
    assert status == 201, body
    status, body = call(base, "POST", "/connectors",
                        string_connector("sink", "org.apache.kafka.connect.file.FileStreamSinkConnector",
                                         file=str(out), topics=topic))
    assert status == 201, body
    wait_until(lambda: lines(out) == ["one", "two"], timeout=120, interval=0.2, message="the sink's output")
    status, body = call(base, "POST", "/connectors", {"name": "x", "config": {"connector.class": "Nope"}})
    assert status == 400 and body["error_code"] == 400, body
    assert dev.stop(sig=signal.SIGTERM) == 0, dev.stderr_tail()
    offsets = json.loads((dev.data_dir / "connect.offsets").read_text())
    assert offsets["offsets"][0]["value"] == {"position": 8}, offsets


def test_connect_standalone_runs_connector_files(broker, tmp_path):
    topic = unique("connect-sa")
    create_topic(broker.bootstrap, topic)
    src, out, offsets = tmp_path / "in.txt", tmp_path / "out.txt", tmp_path / "connect.offsets"
    src.write_text("alpha\nbeta\n")
    worker = tmp_path / "worker.properties"
    worker.write_text(
        f"bootstrap.servers={broker.bootstrap}\nlisteners=http://127.0.0.1:0\n"
        f"offset.storage.file.filename={offsets}\noffset.flush.interval.ms=500\n"
    )
    source_file, sink_file = tmp_path / "source.json", tmp_path / "sink.json"
    source_file.write_text(json.dumps(string_connector("src", "FileStreamSource", file=str(src), topic=topic)))
    sink_file.write_text(json.dumps(string_connector("sink", "FileStreamSink", file=str(out), topics=topic)))
    log = tmp_path / "standalone.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([fjord_bin(), "connect", "standalone", str(worker), str(source_file), str(sink_file)],
                                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: lines(out) == ["alpha", "beta"] or proc.poll() is not None, timeout=120,
                   interval=0.2, message="the sink's output")
        assert lines(out) == ["alpha", "beta"], log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    saved = json.loads(offsets.read_text())
    assert saved["offsets"][0]["key"] == ["src", {"filename": str(src)}]
    assert saved["offsets"][0]["value"] == {"position": 11}

    # A connector file with a bad value stops the worker with an error naming the key.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "config": {"connector.class": "FileStreamSink", "topics": topic,
                                                         "file": str(out), "tasks.max": "many"}}))
    result = subprocess.run([fjord_bin(), "connect", "standalone", str(worker), str(bad)], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "tasks.max" in result.stderr, result.stderr


# -- distributed mode: two `fjord connect distributed` processes -------------------------------

class Worker:
    """One `fjord connect distributed` process; logs in a file."""

    def __init__(self, properties, log):
        self.log = log
        with open(log, "wb") as f:
            self.proc = subprocess.Popen([fjord_bin(), "connect", "distributed", str(properties)],
                                         stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        m = wait_until(lambda: DISTRIBUTED_RE.search(log.read_bytes()) or self.proc.poll() is not None,
                       timeout=60, message="the distributed worker's ready line")
        assert self.proc.poll() is None, log.read_text()[-3000:]
        m = DISTRIBUTED_RE.search(log.read_bytes())
        self.id = f"{m.group(1).decode()}:{int(m.group(2))}"
        self.base = f"http://{self.id}"

    def call(self, method, path, body=None, settle=True):
        """A REST call, retried while the group rebalances (Kafka Connect's 409)."""
        deadline = time.monotonic() + 60
        while True:
            status, answer = call(self.base, method, path, body)
            rebalancing = status == 409 and answer and (
                "stale configuration" in answer["message"] or "conflicting operation" in answer["message"])
            if not (settle and rebalancing) or time.monotonic() > deadline:
                return status, answer
            time.sleep(0.2)

    def tail(self):
        return self.log.read_text(errors="replace")[-4000:]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


DISTRIBUTED_RE = re.compile(rb"Fjord Connect \(distributed, group [^)]*\) REST API on http://([0-9.]+):(\d+)")


def psql(sql: str) -> str:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-tA", "-c", sql],
                          capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def worker_properties(path, bootstrap, group):
    path.write_text("\n".join([
        f"bootstrap.servers={bootstrap}", "listeners=http://127.0.0.1:0", f"group.id={group}",
        "config.storage.replication.factor=1", "offset.storage.replication.factor=1",
        "status.storage.replication.factor=1", "offset.flush.interval.ms=500",
        "session.timeout.ms=6000", "heartbeat.interval.ms=500",
        "consumer.session.timeout.ms=6000", "consumer.heartbeat.interval.ms=1000",
        "key.converter=org.apache.kafka.connect.storage.StringConverter",
    ]) + "\n")
    return path


def test_distributed_workers_share_connectors_and_survive_kill9(broker_factory, tmp_path):
    """file → topic → PostgreSQL across two worker processes; kill -9 of the worker running
    the source task moves it to the other, and every line reaches the table exactly once."""
    broker = broker_factory({"group.initial.rebalance.delay.ms": 0})
    group = unique("connect-cluster")
    props = worker_properties(tmp_path / "worker.properties", broker.bootstrap, group)
    workers = [Worker(props, tmp_path / "w0.log"), Worker(props, tmp_path / "w1.log")]
    table = unique("dist_lines").replace("-", "_")
    psql(f"DROP TABLE IF EXISTS {table}")
    topic = unique("dist-lines")
    create_topic(broker.bootstrap, topic, partitions=2)
    src = tmp_path / "in.txt"
    src.write_text("".join(f"line {i}\n" for i in range(2000)))
    try:
        for w in workers:
            status, root = w.call("GET", "/")
            assert status == 200 and root["kafka_cluster_id"], root
        # Created through different workers: followers forward to the leader.
        status, body = workers[1].call("POST", "/connectors", {"name": "src", "config": {
            "connector.class": "FileStreamSource", "file": str(src), "topic": topic,
            "transforms": "hoist", "transforms.hoist.type": "org.apache.kafka.connect.transforms.HoistField$Value",
            "transforms.hoist.field": "line"}})
        assert status == 201, body
        status, body = workers[0].call("POST", "/connectors", {"name": "sink", "config": {
            "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector", "tasks.max": "2",
            "topics": topic, "connection.url": "jdbc:postgresql://127.0.0.1:5432/test?user=postgres",
            "table.name.format": table, "insert.mode": "upsert", "pk.mode": "record_value",
            "pk.fields": "line", "auto.create": "true"}})
        assert status == 201, body
        for w in workers:
            wait_until(lambda w=w: w.call("GET", "/connectors")[1] == ["sink", "src"], timeout=60,
                       message="both connectors on every worker")

        def running(w, name, tasks):
            status, body = w.call("GET", f"/connectors/{name}/status")
            ok = (status == 200 and body["connector"]["state"] == "RUNNING" and len(body["tasks"]) == tasks
                  and all(t["state"] == "RUNNING" for t in body["tasks"]))
            return body if ok else None

        try:
            wait_until(lambda: running(workers[0], "src", 1) and running(workers[0], "sink", 2), timeout=120,
                       interval=0.5, message="every task RUNNING")
        except AssertionError:
            raise AssertionError("\n".join([str(workers[0].call("GET", "/connectors?expand=status")),
                                             workers[0].tail(), workers[1].tail()]))
        sink_owners = {t["worker_id"] for t in running(workers[1], "sink", 2)["tasks"]}
        assert sink_owners == {w.id for w in workers}, sink_owners
        wait_until(lambda: psql(f"SELECT count(*) FROM {table}") == "2000", timeout=180, interval=0.5,
                   message="2000 rows")

        owner = running(workers[0], "src", 1)["tasks"][0]["worker_id"]
        victim = next(w for w in workers if w.id == owner)
        survivor = next(w for w in workers if w.id != owner)
        # The source's offset reached connect-offsets: the other worker reads it from there.
        size = src.stat().st_size
        wait_until(lambda: survivor.call("GET", "/connectors/src/offsets")[1]["offsets"]
                   == [{"partition": {"filename": str(src)}, "offset": {"position": size}}],
                   timeout=60, interval=0.2, message="the saved source offset")

        # kill -9 the worker that runs the source task; more lines arrive meanwhile.
        victim.proc.kill()
        victim.proc.wait()
        with open(src, "a") as f:
            f.write("".join(f"line {i}\n" for i in range(2000, 4000)))

        def all_on_survivor():
            statuses = [running(survivor, "src", 1), running(survivor, "sink", 2)]
            return all(s and all(t["worker_id"] == survivor.id for t in s["tasks"]) for s in statuses)

        wait_until(all_on_survivor, timeout=120, interval=0.5, message="every task on the survivor")
        wait_until(lambda: psql(f"SELECT count(*) FROM {table}") == "4000", timeout=180, interval=0.5,
                   message=f"4000 rows\n{survivor.tail()}")
        assert psql(f"SELECT count(DISTINCT line) FROM {table}") == "4000"
        missing = psql(f"SELECT count(*) FROM generate_series(0, 3999) g "
                       f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE line = 'line ' || g)")
        assert missing == "0"
        # The source resumed from the offset the killed worker saved: nothing was sent twice.
        end = sum(confluent_watermarks(broker.bootstrap, topic, p)[1] for p in range(2))
        assert end == 4000, end
        survivor.proc.send_signal(signal.SIGTERM)
        assert survivor.proc.wait(timeout=60) == 0, survivor.tail()
    finally:
        for w in workers:
            w.close()
        psql(f"DROP TABLE IF EXISTS {table}")

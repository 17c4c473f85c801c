"""Fjord Connect through the real binary: `fjord dev` serves the Kafka Connect REST API beside
the broker, and `fjord connect standalone` runs connector files against a broker."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.error
import urllib.request

from conftest import fjord_bin
from kafka_clients import create_topic, unique, wait_until

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

"""The `fjord` command line: dev and broker commands, config sources, signals, one-line errors."""

import re
import signal
import subprocess
import tempfile
from pathlib import Path

from conftest import fjord_bin
from kafka_clients import Rec, admin, confluent_consume, kcat_consume, kcat_produce, kp_produce, unique

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def partitions_of(bootstrap, topic):
    t = admin(bootstrap).list_topics(topic=topic, timeout=10).topics[topic]
    assert t.error is None, t.error
    return len(t.partitions)


def run_fjord(args, timeout=20, **kwargs):
    return subprocess.run([fjord_bin(), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kwargs)


def test_dev_command_serves_kafka(broker_factory):
    # Ephemeral ports for the registry and Connect too: the test must not need 8081/8083 free.
    b = broker_factory(command="dev", extra_args=["--registry-addr", "127.0.0.1:0",
                                                  "--connect-addr", "127.0.0.1:0"])
    topic = unique("cli-dev")
    kcat_produce(b.bootstrap, topic, [Rec(b"k", b"hello from dev")])  # auto-created
    assert [r.value for r in kcat_consume(b.bootstrap, topic, partition=0)] == [b"hello from dev"]


def test_sigterm_and_sigint_shut_down_cleanly(broker):
    topic = unique("cli-sig")
    kp_produce(broker.bootstrap, topic, [Rec(None, b"one")])
    assert broker.stop(sig=signal.SIGTERM) == 0, broker.stderr_tail()
    broker.start_again()
    kp_produce(broker.bootstrap, topic, [Rec(None, b"two")])
    assert broker.stop(sig=signal.SIGINT) == 0, broker.stderr_tail()
    broker.start_again()
    assert [r.value for r in confluent_consume(broker.bootstrap, topic, {0: 0}, count=None)] == [b"one", b"two"]


def test_taken_port_is_a_one_line_error(broker):
    with tempfile.TemporaryDirectory() as d:
        proc = run_fjord(["broker", "--data-dir", d, "--kafka-addr", broker.bootstrap])
    err = ANSI.sub("", proc.stderr)
    assert proc.returncode != 0, "a second broker on a taken port did not fail"
    assert "panicked" not in err and "RUST_BACKTRACE" not in err, err
    assert any(str(broker.port) in line for line in err.splitlines()), f"error does not name the address: {err}"
    assert broker.running, "the first broker was hurt"


def test_unusable_data_dir_is_a_one_line_error():
    with tempfile.TemporaryDirectory() as d:
        not_a_dir = Path(d) / "file"
        not_a_dir.write_text("I am a file")
        proc = run_fjord(["broker", "--data-dir", str(not_a_dir), "--kafka-addr", "127.0.0.1:0"])
    err = ANSI.sub("", proc.stderr)
    assert proc.returncode != 0, "a data dir that is a regular file was accepted"
    assert "panicked" not in err, err
    assert str(not_a_dir) in err, f"error does not name the data dir: {err}"


def test_config_file_server_properties(broker_factory):
    with tempfile.TemporaryDirectory() as d:
        props = Path(d) / "server.properties"
        data = Path(d) / "kafka-logs"
        props.write_text(
            "# a Kafka server.properties\n"
            "node.id=1\n"
            "listeners=PLAINTEXT://127.0.0.1:0\n"
            f"log.dirs={data}\n"
            "num.partitions=3\n"
            "auto.create.topics.enable=true\n"
            "log.retention.hours=168\n"
            "zookeeper.connection.timeout.ms=18000\n"  # unknown to Fjord: logged and ignored
        )
        b = broker_factory(extra_args=["--config", str(props)], address_flags=False)
        topic = unique("cli-props")
        kp_produce(b.bootstrap, topic, [Rec(None, b"x")])
        assert partitions_of(b.bootstrap, topic) == 3, "num.partitions from server.properties"
        assert (data / f"{topic}-0").is_dir(), f"log.dirs from server.properties not used: {list(data.iterdir())}"
        assert b.stop() == 0


def test_env_vars_and_flag_precedence(broker_factory):
    b = broker_factory(env={"FJORD_NUM_PARTITIONS": "2"})
    topic = unique("cli-env")
    kp_produce(b.bootstrap, topic, [Rec(None, b"x")])
    assert partitions_of(b.bootstrap, topic) == 2, "FJORD_NUM_PARTITIONS"

    b = broker_factory({"num.partitions": 5}, env={"FJORD_NUM_PARTITIONS": "2"})
    topic = unique("cli-flag")
    kp_produce(b.bootstrap, topic, [Rec(None, b"x")])
    assert partitions_of(b.bootstrap, topic) == 5, "--override wins over FJORD_* variables"

"""Fixtures for the interop suite: the real `fjord` binary on an ephemeral port.

Every test gets its own broker process and its own temporary data directory
(`Broker`), so tests never share state and can be run in any order.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

READY_RE = re.compile(rb"listening on ([0-9.]+):(\d+)")
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


def fjord_bin() -> str:
    default = Path(
        os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache" / "fjord-target"
    ) / "debug" / "fjord"
    return os.environ.get("FJORD_BIN") or str(default)


class BrokerError(RuntimeError):
    pass


class Broker:
    """One `fjord broker` process with a fresh temporary data dir.

    Logs go to files in the temp dir (stdout.log / stderr.log) so that a chatty broker
    can never block on a full pipe; they are included in every start failure message.
    """

    def __init__(self, overrides: dict[str, object] | None = None, command: str = "broker",
                 extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                 address_flags: bool = True):
        self.overrides = {k: str(v) for k, v in (overrides or {}).items()}
        self.command = command
        self.extra_args = list(extra_args or [])
        self.env = env
        self.address_flags = address_flags  # False: data dir and listener come from a config file
        self._tmp = Path(tempfile.mkdtemp(prefix="fjord-interop-"))
        self.data_dir = self._tmp / "data"
        self.stdout_path = self._tmp / "stdout.log"
        self.stderr_path = self._tmp / "stderr.log"
        self.proc: subprocess.Popen | None = None
        self.host: str | None = None
        self.port: int | None = None
        self.starts = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, port: int | None = None) -> "Broker":
        if self.proc is not None and self.proc.poll() is None:
            raise BrokerError("broker already running")
        addr = f"127.0.0.1:{port if port is not None else 0}"
        args = [fjord_bin(), self.command]
        if self.address_flags:
            args += ["--data-dir", str(self.data_dir), "--kafka-addr", addr]
        args += self.extra_args
        for key, value in self.overrides.items():
            args += ["--override", f"{key}={value}"]
        self.args = args
        out_offset = self.stdout_path.stat().st_size if self.stdout_path.exists() else 0
        self._err_offset = self.stderr_path.stat().st_size if self.stderr_path.exists() else 0
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            env = None if self.env is None else {**os.environ, **self.env}
            self.proc = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        self.starts += 1
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            with open(self.stdout_path, "rb") as f:
                f.seek(out_offset)
                m = READY_RE.search(f.read())
            if m:
                self.host, self.port = m.group(1).decode(), int(m.group(2))
                if port not in (None, 0) and self.port != port:
                    raise BrokerError(f"asked for port {port}, broker bound {self.port}")
                return self
            code = self.proc.poll()
            if code is not None:
                raise BrokerError(
                    f"fjord exited with code {code} before it was ready\n{self.describe()}"
                )
            if time.monotonic() > deadline:
                self.kill9()
                raise BrokerError(
                    f"fjord printed no ready line within {READY_TIMEOUT_S}s\n{self.describe()}"
                )
            time.sleep(0.02)

    def stop(self, timeout: float = STOP_TIMEOUT_S, sig: int = signal.SIGTERM) -> int:
        """SIGTERM (or `sig`) and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise BrokerError(f"fjord did not exit within {timeout}s of SIGTERM\n{self.describe()}")

    def kill9(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def restart(self, clean: bool = True) -> "Broker":
        """Stop (SIGTERM, or SIGKILL when clean=False) and start again on the same data dir and port."""
        if self.proc is not None and self.proc.poll() is None:
            if clean:
                code = self.stop()
                if code != 0:
                    raise BrokerError(f"fjord exited with {code} on SIGTERM\n{self.describe()}")
            else:
                self.kill9()
        return self.start_again()

    def start_again(self) -> "Broker":
        """Start the stopped broker on the same data dir and the same port as before.

        Retries briefly: right after a stop the old port can still be held for a moment.
        """
        assert self.port is not None
        deadline = time.monotonic() + 15
        while True:
            try:
                return self.start(port=self.port)
            except BrokerError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self._tmp, ignore_errors=True)

    # -- info ----------------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        assert self.port is not None, "broker not started"
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"

    def stderr_tail(self, limit: int = 6000) -> str:
        try:
            data = self.stderr_path.read_bytes()
        except FileNotFoundError:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def describe(self) -> str:
        out = self.stdout_path.read_bytes()[-2000:].decode("utf-8", "replace") if self.stdout_path.exists() else ""
        return (
            f"command: {' '.join(getattr(self, 'args', []))}\n"
            f"--- stdout (tail) ---\n{out}\n--- stderr (tail) ---\n{self.stderr_tail()}"
        )


@pytest.fixture
def broker_factory(request):
    """Start brokers with custom `--override`s: `broker_factory({"num.partitions": 3})`."""
    brokers: list[Broker] = []

    def make(overrides: dict[str, object] | None = None, command: str = "broker", start: bool = True,
             **kwargs) -> Broker:
        b = Broker(overrides, command=command, **kwargs)
        brokers.append(b)
        return b.start() if start else b

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for b in brokers:
        if failed:
            print(f"\n=== broker {b.bootstrap if b.port else '?'} stderr (tail) ===\n{b.stderr_tail(3000)}")
        b.close()


@pytest.fixture
def broker(broker_factory) -> Broker:
    """A fresh broker with default settings."""
    return broker_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def pytest_report_header(config):
    lines = [f"fjord binary: {fjord_bin()}"]
    try:
        import confluent_kafka

        lines.append(
            f"confluent-kafka {confluent_kafka.version()[0]}, bundled librdkafka {confluent_kafka.libversion()[0]}"
        )
    except Exception as e:  # pragma: no cover - reported, not fatal
        lines.append(f"confluent-kafka: unavailable ({e})")
    try:
        import kafka

        lines.append(f"kafka-python {kafka.__version__}")
    except Exception as e:  # pragma: no cover
        lines.append(f"kafka-python: unavailable ({e})")
    try:
        out = subprocess.run(["kcat", "-V"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"Version (\S+) .*?librdkafka (\S+)", out, re.S)
        lines.append(f"kcat {m.group(1)}, librdkafka {m.group(2)}" if m else f"kcat: {out.strip()}")
    except Exception as e:  # pragma: no cover
        lines.append(f"kcat: unavailable ({e})")
    return lines


@pytest.fixture
def registry_factory(broker_factory):
    """Start `fjord registry` processes against a broker: `registry_factory(broker)`.

    Each is a `Broker` object running the `registry` command (its `bootstrap` is the REST
    address); `url(r)` gives `http://host:port`.
    """

    def make(broker: Broker, *extra: str) -> Broker:
        return broker_factory(
            command="registry",
            address_flags=False,
            extra_args=["--bootstrap", broker.bootstrap, "--listen", "127.0.0.1:0", *extra],
        )

    return make

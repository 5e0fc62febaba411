"""The broker's Java process: its files in the data folder, start-up, liveness and shutdown.

Files under ``data_dir``: ``server.properties``, ``log4j.properties``, ``broker.pid`` (JSON),
``kraft/`` (Kafka's log.dirs), ``logs/server.log`` (the broker's log) and ``logs/stdout.log``.

>>> props = server_properties("127.0.0.1", 9092, 9093, Path("/tmp/k"))
>>> props["listeners"]
'PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093'
>>> node2 = server_properties("127.0.0.1", 9094, 9095, Path("/tmp/k2"), node_id=2, voters={1: 9093, 2: 9095, 3: 9097})
>>> node2["node.id"], node2["controller.quorum.voters"], node2["min.insync.replicas"]
('2', '1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097', '2')
"""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import BrokerError

PID_FILE = "broker.pid"
START_MARK = "==== streamrec: broker start"
LOG4J = """\
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=${kafka.logs.dir}/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=3
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.clients.NetworkClient=WARN
"""


@dataclass(frozen=True)
class PidInfo:
    """What ``broker.pid`` records about the running broker."""

    pid: int
    host: str
    port: int
    controller_port: int
    started: float


def paths(data_dir: Path) -> dict[str, Path]:
    """Every file and folder the broker uses inside ``data_dir``."""
    return {
        "props": data_dir / "server.properties",
        "log4j": data_dir / "log4j.properties",
        "pid": data_dir / PID_FILE,
        "kraft": data_dir / "kraft",
        "logs": data_dir / "logs",
        "log": data_dir / "logs" / "server.log",
        "stdout": data_dir / "logs" / "stdout.log",
        "lock": data_dir / ".broker.lock",
    }


def server_properties(host: str, port: int, controller_port: int, data_dir: Path, *, node_id: int = 1,
                      voters: Mapping[int, int] | None = None) -> dict[str, str]:
    """Settings of one KRaft node (broker and controller in one process) on ``host``.

    Alone by default. ``voters`` maps every node id of a cluster to its controller port: then the
    quorum lists them all, and Kafka's internal topics (consumer offsets, transaction state) and
    topics created without a replication factor get three replicas (one per node on a smaller
    cluster), two of them in sync for a write to succeed.
    """
    voters = dict(voters) if voters else {node_id: controller_port}
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": ",".join(f"{n}@{host}:{c}" for n, c in sorted(voters.items())),
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(paths(data_dir)["kraft"]),
        "num.partitions": "1",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    if len(voters) > 1:
        replicas = min(3, len(voters))
        in_sync = str(max(1, replicas - 1))
        props.update({
            "offsets.topic.replication.factor": str(replicas),
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": in_sync,
            "default.replication.factor": str(replicas),
            "min.insync.replicas": in_sync,
        })
    return props


def write_config(host: str, port: int, controller_port: int, data_dir: Path, *, node_id: int = 1,
                 voters: Mapping[int, int] | None = None) -> None:
    """(Re)write ``server.properties`` and ``log4j.properties`` for this start (see :func:`server_properties`)."""
    p = paths(data_dir)
    p["logs"].mkdir(parents=True, exist_ok=True)
    props = server_properties(host, port, controller_port, data_dir, node_id=node_id, voters=voters)
    body = "".join(f"{k}={v}\n" for k, v in props.items())
    p["props"].write_text("# Written by streamrec on every start; edits are overwritten.\n" + body)
    p["log4j"].write_text(LOG4J)


def java_binary() -> str:
    """The ``java`` on PATH (Java 17 is what the project is tested with)."""
    java = shutil.which("java")
    if not java:
        raise BrokerError("Java ('java') is not on PATH; install a JDK/JRE 17 "
                          "(e.g. `apt-get install openjdk-17-jre-headless`) to run the local Kafka broker")
    return java


def _java_cmd(libs: Path, data_dir: Path, main: str, *args: str, heap_mb: int = 512) -> list[str]:
    p = paths(data_dir)
    return [
        java_binary(), f"-Xms{min(256, heap_mb)}m", f"-Xmx{heap_mb}m", "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
        f"-Dlog4j.configuration={p['log4j'].as_uri()}", f"-Dkafka.logs.dir={p['logs']}",
        "-cp", f"{libs}/*", main, *args,
    ]


def new_cluster_id() -> str:
    """A random KRaft cluster id, as Kafka writes one (16 bytes, URL-safe base64, no padding).

    >>> len(new_cluster_id()), new_cluster_id().startswith("-")
    (22, False)
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):  # Kafka never hands out ids that read as an option
            return cid


def stored_cluster_id(data_dir: Path) -> str | None:
    """The cluster id ``kraft/meta.properties`` records, or None when the storage is not formatted."""
    try:
        text = (paths(data_dir)["kraft"] / "meta.properties").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "cluster.id":
            return value.strip()
    return None


def format_storage(libs: Path, data_dir: Path, timeout: float = 60, cluster_id: str | None = None) -> bool:
    """Format ``kraft/`` unless already formatted; True if it formatted.

    The nodes of one cluster share ``cluster_id``; a single node gets a new one from Kafka's tool.
    """
    p = paths(data_dir)
    if (p["kraft"] / "meta.properties").is_file():
        return False
    tool = "kafka.tools.StorageTool"

    def run(*args: str) -> str:
        done = subprocess.run(_java_cmd(libs, data_dir, tool, *args, heap_mb=256), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise BrokerError(f"formatting Kafka storage in {p['kraft']} failed: {tail[0][:300]}")
        return done.stdout.strip()

    if cluster_id is None:
        cluster_id = run("random-uuid").splitlines()[-1].strip()
    run("format", "-t", cluster_id, "-c", str(p["props"]), "--ignore-formatted")
    return True


def check_port_free(host: str, port: int, what: str) -> None:
    """Raise :class:`BrokerError` if ``host:port`` cannot be bound (someone else listens there)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BrokerError(
                    f"port {host}:{port} ({what}) is already in use by another process; stop it or set "
                    "STREAMREC_BROKER to another port (the controller uses that port + 1)"
                ) from None
            raise BrokerError(f"cannot bind {host}:{port} ({what}): {exc.strerror}") from None


def start(libs: Path, host: str, port: int, controller_port: int, data_dir: Path,
          heap_mb: int = 512) -> PidInfo:
    """Launch the broker detached (its own session, re-parented away from us) and write the pid file.

    A ``sh`` in a new session starts java in the background and exits at once, so the broker
    never becomes a zombie child of the caller and outlives it.
    """
    p = paths(data_dir)
    cmd = _java_cmd(libs, data_dir, "kafka.Kafka", str(p["props"]), heap_mb=heap_mb)
    for log in (p["log"], p["stdout"]):  # log_problem() reads only what follows the last marker
        with open(log, "a") as handle:
            handle.write(f"{START_MARK} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    script = 'cd "$1" || exit 1; out="$2"; shift 2; "$@" </dev/null >>"$out" 2>&1 & echo $!'
    launcher = subprocess.run(["sh", "-c", script, "sh", str(data_dir), str(p["stdout"]), *cmd],
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              start_new_session=True, text=True, timeout=30)
    try:
        pid = int(launcher.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BrokerError(f"could not start the Kafka broker (launcher said {launcher.stdout!r})") from None
    info = PidInfo(pid=pid, host=host, port=port, controller_port=controller_port, started=time.time())
    tmp = p["pid"].with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(info)))
    os.replace(tmp, p["pid"])
    return info


def read_pid(data_dir: Path) -> PidInfo | None:
    """The pid file's content, or None when absent or unreadable."""
    try:
        return PidInfo(**json.loads(paths(data_dir)["pid"].read_text()))
    except (OSError, ValueError, TypeError):
        return None


def clear_pid(data_dir: Path) -> None:
    paths(data_dir)["pid"].unlink(missing_ok=True)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return ""
    except OSError:
        return ""
    done = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True)
    return done.stdout


def is_our_broker(pid: int, data_dir: Path) -> bool:
    """True while ``pid`` is alive and is the broker started with this data folder's config.

    Checking the command line (not just the pid) makes a stale pid file reused by an unrelated
    process harmless; a zombie has an empty command line and counts as dead.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    cmd = _cmdline(pid)
    return "kafka.Kafka" in cmd and str(paths(data_dir)["props"]) in cmd


def stop(pid: int, data_dir: Path, timeout: float = 30) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL if still alive after ``timeout`` seconds."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not is_our_broker(pid, data_dir):
                return
            time.sleep(0.1)
    raise BrokerError(f"the Kafka broker (pid {pid}) did not exit after SIGKILL; check `ps -p {pid}`")


def log_problem(data_dir: Path) -> str:
    """The most telling part of the broker's logs (last ERROR/FATAL/exception line and the next),
    followed by the log's path, for error messages."""
    p = paths(data_dir)
    for path in (p["log"], p["stdout"]):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if START_MARK in text:  # only this start's lines, not an earlier run's errors
            text = text[text.rfind(START_MARK):].partition("\n")[2]
        lines = [ln.strip() for ln in text.splitlines()[-400:] if ln.strip()]
        for i in range(len(lines) - 1, -1, -1):
            line = lines[i]
            if " ERROR " in line or " FATAL " in line or "Exception" in line or line.startswith("Error"):
                return f"{' '.join(lines[i:i + 2])[:400]} (log: {path})"
    return f"no error in the log (log: {p['log']})"

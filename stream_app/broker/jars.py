"""Fetch the Apache Kafka jars from Maven Central with the machine's ``mvn`` and cache them.

The jars land in ``CACHE_DIR/kafka_2.13-3.9.1/libs``; a manifest written last marks the set as
complete, so an interrupted download is redone rather than half-used.

>>> jar_dir_name()
'kafka_2.13-3.9.1'
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import BrokerError

KAFKA_VERSION = "3.9.1"
SCALA_VERSION = "2.13"
SLF4J_VERSION = "1.7.36"
MAIN_JAR = f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar"
MANIFEST = "jars.txt"

POM = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Runtime class path of the local single-node Kafka broker (KRaft mode). -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.streamrec</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <!-- slf4j binding: without it the broker logs nothing at all -->
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>{SLF4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""


def jar_dir_name() -> str:
    """Name of the cache sub-folder for the pinned Kafka version."""
    return f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _complete(libs: Path, manifest: Path) -> bool:
    try:
        names = [n for n in manifest.read_text().splitlines() if n.strip()]
    except OSError:
        return False
    return MAIN_JAR in names and all((libs / name).is_file() for name in names)


def _last_error_line(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("[ERROR]") and len(ln) > 8]
    line = (errors[0] if errors else (lines[-1] if lines else "no output"))
    return line.removeprefix("[ERROR]").strip()[:300]


def ensure_jars(cache_dir: Path, *, mvn: str | None = None, timeout: float = 900) -> Path:
    """Return the folder holding the broker's jars, downloading them once with Maven.

    ``mvn`` defaults to the one on ``PATH``. Raises :class:`BrokerError` (one line) when Maven is
    missing, Maven Central cannot be reached, or the download is incomplete.
    """
    root = Path(cache_dir).expanduser() / jar_dir_name()
    libs, manifest = root / "libs", root / MANIFEST
    if _complete(libs, manifest):
        return libs
    with file_lock(root / ".lock"):
        if _complete(libs, manifest):  # another process fetched them while we waited
            return libs
        mvn = mvn or shutil.which("mvn")
        if not mvn:
            raise BrokerError(
                "Maven ('mvn') is not on PATH; install it (e.g. `apt-get install maven`) so the "
                f"Kafka {KAFKA_VERSION} jars can be fetched into {root}"
            )
        pom = root / "pom.xml"
        pom.write_text(POM)
        partial = root / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={partial}"]
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=timeout, cwd=root)
        except OSError as exc:
            raise BrokerError(f"could not run Maven ({mvn}): {exc.strerror}; install Maven or fix PATH") from None
        except subprocess.TimeoutExpired:
            raise BrokerError(
                f"fetching the Kafka {KAFKA_VERSION} jars with Maven took over {timeout:.0f} s; "
                "check network access to Maven Central (repo.maven.apache.org) and retry"
            ) from None
        if done.returncode != 0:
            reason = _last_error_line(done.stdout + "\n" + done.stderr)
            raise BrokerError(
                f"could not fetch the Kafka {KAFKA_VERSION} jars with Maven (exit {done.returncode}): "
                f"{reason}; check network access to Maven Central or the proxy in ~/.m2/settings.xml"
            )
        names = sorted(p.name for p in partial.glob("*.jar"))
        if MAIN_JAR not in names:
            raise BrokerError(f"Maven finished but {MAIN_JAR} is missing from {partial}; "
                              f"delete {root} and retry")
        manifest.unlink(missing_ok=True)
        shutil.rmtree(libs, ignore_errors=True)
        os.replace(partial, libs)
        tmp = manifest.with_suffix(".tmp")
        tmp.write_text("\n".join(names) + "\n")
        os.replace(tmp, manifest)
    return libs

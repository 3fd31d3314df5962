"""The local Docker engine: Debian's `docker.io`, installed and started by the scripts that need it.

CI and every new session start on a machine where no daemon runs, so each script that needs Docker calls
:func:`engine` (or ``scripts/docker up``): it installs the package when ``dockerd`` is missing, starts the
daemon when none answers, and stops it again only if it was the one that started it. A daemon someone
else started is used and left running.

    scripts/docker up       start it (if needed) and leave it running; `down` stops it later
    scripts/docker down     stop the daemon `up` started (never one started by someone else)
    scripts/docker status   exit 0 when a daemon answers
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import apt_packages

STATE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ai-traiding" / "docker"
PID_FILE = STATE / "dockerd.pid"  # only a daemon started by these scripts has one
LOG_FILE = STATE / "dockerd.log"
START_TIMEOUT_S = 60.0


class DockerError(RuntimeError):
    """A failure with a message meant for the person running the script."""


def log(message: str) -> None:
    print(f"docker: {message}", file=sys.stderr, flush=True)


def docker(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; errors carry its stderr."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise DockerError(f"docker {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


def answering() -> bool:
    """True when a Docker daemon answers on the default socket."""
    if not shutil.which("docker"):
        return False
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=15, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def install() -> None:
    """Debian's docker.io (dockerd, containerd, runc) when dockerd is missing; no service is started."""
    if shutil.which("dockerd") and shutil.which("docker"):
        return
    try:
        apt_packages.install(["docker.io"])
    except apt_packages.AptError as error:
        raise DockerError(str(error)) from None


def _our_pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    return pid if exe.endswith("/dockerd") else None


def start() -> bool:
    """Make a daemon answer; True if this call started it."""
    if answering():
        return False
    install()
    STATE.mkdir(parents=True, exist_ok=True)
    log(f"starting dockerd (log: {LOG_FILE})")
    with LOG_FILE.open("ab") as out:
        proc = subprocess.Popen(
            ["dockerd"], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    PID_FILE.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            PID_FILE.unlink(missing_ok=True)
            tail = "\n".join(LOG_FILE.read_text(errors="replace").splitlines()[-20:])
            raise DockerError(f"dockerd exited with {proc.returncode} while starting:\n{tail}")
        if answering():
            log(f"dockerd answers (pid {proc.pid})")
            return True
        time.sleep(0.5)
    stop()
    raise DockerError(f"dockerd did not answer within {START_TIMEOUT_S:.0f}s; see {LOG_FILE}")


def stop() -> None:
    """Stop the daemon these scripts started (with its containerd); a daemon without our pid file is left alone."""
    pid = _our_pid()
    if pid is None:
        PID_FILE.unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    if Path(f"/proc/{pid}").exists():
        log(f"dockerd (pid {pid}) ignored SIGTERM; sending SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    PID_FILE.unlink(missing_ok=True)
    log(f"stopped dockerd (pid {pid})")


@contextlib.contextmanager
def engine() -> Iterator[None]:
    """A running daemon for the duration of the block; stopped afterwards only if the block started it."""
    started = start()
    try:
        yield
    finally:
        if started:
            stop()


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) == 2 else ""
    if command in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    try:
        if command == "up":
            start()
            return 0
        if command == "down":
            if _our_pid() is None and answering():
                log("the running daemon was not started by these scripts; leaving it running")
            stop()
            return 0
        if command == "status":
            ok = answering()
            print(f"dockerd {'answers' if ok else 'does not answer'}" + (" (started by scripts)" if _our_pid() else ""))
            return 0 if ok else 3
    except DockerError as error:
        log(f"ERROR: {error}")
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

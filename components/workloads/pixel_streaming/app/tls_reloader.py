"""TLS reloader (beside coturn, sharing its process namespace): when the certificate Secret mounted at CERT_DIR
changes (cert-manager renewed it; the kubelet swaps the files in), sends coturn SIGUSR2, on which coturn reads its
certificate and key again without dropping a session (mainrelay.c `reload_ssl_certs`, coturn 4.17.1).

Environment: CERT_DIR (tls.crt, tls.key), PID_FILE (coturn's pidfile), CHECK_SECONDS (30).
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import time
from pathlib import Path


def fingerprint(directory: Path) -> str | None:
    """A digest of the certificate and key, or None while they are not both there."""
    try:
        return hashlib.sha256(b"".join((directory / n).read_bytes() for n in ("tls.crt", "tls.key"))).hexdigest()
    except OSError:
        return None


def reload_coturn(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text().strip()), signal.SIGUSR2)
        return True
    except (OSError, ValueError) as error:
        print(f"tls-reloader: could not signal coturn ({error})", file=sys.stderr, flush=True)
        return False


def step(directory: Path, pid_file: Path, seen: str | None) -> str | None:
    """One check: signal coturn if the files changed since `seen` (None: the first look, nothing to signal).
    Returns what coturn now has; a signal that could not be sent is tried again at the next check."""
    current = fingerprint(directory)
    if current is None or current == seen:
        return seen
    if seen is None:
        return current
    if not reload_coturn(pid_file):
        return seen
    print("tls-reloader: the certificate changed; coturn reloads it", flush=True)
    return current


def main() -> None:
    directory, pid_file = Path(os.environ["CERT_DIR"]), Path(os.environ["PID_FILE"])
    seconds = float(os.environ.get("CHECK_SECONDS", "30"))
    seen = step(directory, pid_file, None)
    while True:
        time.sleep(seconds)
        seen = step(directory, pid_file, seen)


if __name__ == "__main__":
    main()

"""What every test server started as a child process needs: its port, read from its first line, and a clean stop."""

from __future__ import annotations

import os
import subprocess
import threading
import time

START_TIMEOUT = 30.0  # seconds a server may take to print its port


def read_port(process: subprocess.Popen[bytes], what: str) -> int:
    """The port the server prints as its first line; RuntimeError (and the process killed) if it does not."""
    assert process.stdout is not None
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(START_TIMEOUT)
    line = result[0].strip() if result else b""
    if not line.isdigit():
        process.kill()
        raise RuntimeError(f"the {what} server did not start (exit code {process.poll()})")
    return int(line)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server, kill it if it lingers, and close its pipe."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def exit_with_parent() -> None:
    """In a server process: stop when the process that started it is gone, even if that one was killed outright."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()

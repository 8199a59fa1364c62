"""Looking at processes from a test (Linux /proc): a killed process's children, and whether a process is gone."""

from __future__ import annotations

import signal
from pathlib import Path


def send_sigint_blocked(conn) -> None:
    """In a child: tell the parent whether SIGINT is blocked in it (as ``children.sigint_held`` spawns it)."""
    conn.send(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set()))


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` ([] where there is no /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def gone(pid: int) -> bool:
    """The process has exited (no such process, or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return True
    return fields[0] == "Z"

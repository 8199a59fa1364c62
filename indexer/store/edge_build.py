"""Index builds for the embedded store that never stop searches: HNSW (and quantized vectors) are built by a child
process on a copy of the shard, and the built copy replaces the shard in one short switch.

qdrant-edge 0.9.0 holds the GIL for the whole of ``EdgeShard.optimize()`` (measured: a thread ticking every
millisecond ticked 2 times in a 23 s build), so an in-process build freezes every other thread of the app.  Here:

1. the caller stops writes to the collection (``EdgeCollection`` holds its write lock) and flushes the shard;
2. a child process (this file run as a script, at nice 10: searches win the cores) copies the shard folder to
   ``<root>/.building/NAME``, loads the copy, runs ``optimize()``, flushes and closes it, and prints what it did;
3. the parent closes its shard, renames the old folder to ``.building/NAME.old``, the copy into place, and loads it:
   searches wait only for this switch (close + load, ~0.25 s at 30k points), never for the build.

A crash at any step leaves either the old shard in place or the new one, and ``recover`` (called when a collection
is opened) finishes or undoes the switch and removes leftovers.  The copy needs as much free disk as the shard.

Run as a script it is the child: ``python edge_build.py SRC DST``; it imports only the standard library and
qdrant_edge, so it starts without the package on the path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BUILDING = ".building"  # under the store root; never listed as a collection
CHILD_NICE = 10


def build_dir(root: Path, name: str) -> Path:
    return root / BUILDING / name


def old_dir(root: Path, name: str) -> Path:
    return root / BUILDING / f"{name}.old"


def recover(root: Path, live: Path, name: str) -> None:
    """Finish or undo a switch a crash interrupted: put the old shard back if no shard is in place, then remove
    the copy and the old folder (a half-built copy is never used)."""
    old, built = old_dir(root, name), build_dir(root, name)
    if not live.is_dir() and old.is_dir():
        os.replace(old, live)
    for leftover in (built, old):
        if leftover.exists():
            shutil.rmtree(leftover, ignore_errors=True)


def run_child(src: Path, dst: Path, timeout: float | None = None) -> bool:
    """Build the index on a copy of ``src`` at ``dst`` in a child process; True if it optimised any segment.
    Raises RuntimeError with the child's last words if it failed (``dst`` is then removed)."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(src), str(dst)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        shutil.rmtree(dst, ignore_errors=True)
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"index build failed (exit {proc.returncode}): {' | '.join(tail)}")
    return bool(json.loads(proc.stdout.strip().splitlines()[-1])["optimized"])


def _child(src: str, dst: str) -> None:
    import qdrant_edge as qe

    try:
        os.nice(CHILD_NICE)
    except OSError:
        pass
    shutil.copytree(src, dst)
    shard = qe.EdgeShard.load(dst)
    optimized = bool(shard.optimize())
    shard.flush()
    shard.close()
    print(json.dumps({"optimized": optimized}), flush=True)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])

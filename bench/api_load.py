"""Search through the HTTP API: latency in-process vs over HTTP, then a load test from a second process.

1. A fresh data folder gets the sample corpus (``app/sample_corpus``) with the configured model; the same distinct
   queries (each embeds: no query cache hit) are searched in this process (``Pipeline.search``), one at a time.
2. ``python -m api serve`` is started on loopback over that folder (a second process owns the index now) and the
   same queries are searched one at a time over HTTP (``GET /api/v1/search``): the difference is what a client of
   the service pays per search (the app's choice between hosting the API and being its client, docs/api.md);
   each answer's ``took_ms`` (``Pipeline.search`` inside the server) gives the overhead of the same request.
3. ``--clients`` threads in this process (each its own connection) search for ``--seconds`` without pause; the
   latencies (p50/p95/p99), throughput and errors (any non-200 or transport error) are reported.

    python bench/api_load.py                      # 20 clients x 60 s
    python bench/api_load.py --clients 4 --seconds 10 --queries 40   # quick

Prints the CPU model and the load average before and after (the figures are only comparable on the same machine
in the same run); writes bench/out/api_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer import IndexerSettings, Pipeline  # noqa: E402

WORDS = ("liberty", "whale", "species", "nation", "pond", "government", "sea", "selection", "people", "woods",
         "rights", "ship", "nature", "war", "life", "law", "evolution", "freedom", "sailor", "solitude")


def query(i: int, tag: str) -> str:
    """Distinct queries (every search runs the model: no cached query vector)."""
    return f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7 + 3) % len(WORDS)]} {tag}{i}"


def queries(n: int, tag: str) -> list[str]:
    return [query(i, tag) for i in range(n)]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": round(pct(ms, 50), 2), "p95_ms": round(pct(ms, 95), 2),
            "p99_ms": round(pct(ms, 99), 2), "mean_ms": round(statistics.fmean(ms), 2) if ms else None}


def cpu() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def start_server(data_dir: Path, port: int, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "api", "serve", "--port", str(port), "--no-sync"], cwd=ROOT,
                            env={**env, "MOESEARCH_DATA_DIR": str(data_dir)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 300
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/ready", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # waiting for another process to open the index
    proc.kill()
    raise SystemExit("the server did not become ready in 300 s")


def loadtest(url: str, clients: int, seconds: float) -> dict:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            n = 0
            while time.monotonic() < stop:
                q = query(n, f"c{i}-")
                t0 = time.perf_counter()
                try:
                    r = http.get("/search", params={"q": q, "k": 10})
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                latencies[i].append((time.perf_counter() - t0) * 1000)
                n += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    flat = [x for per in latencies for x in per]
    return {**summary(flat), "clients": clients, "seconds": round(wall, 1),
            "searches_per_s": round(len(flat) / wall, 1), "errors": len(errors), "first_errors": errors[:5]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--queries", type=int, default=100, help="sequential queries per path (in-process, HTTP)")
    ap.add_argument("--port", type=int, default=8611)
    args = ap.parse_args()
    print(f"CPU: {cpu()} ({os.cpu_count()} cores); load average {load()}", flush=True)
    data_dir = Path(tempfile.mkdtemp(prefix="moesearch-api-bench-"))
    env = {k: v for k, v in os.environ.items() if k != "MOESEARCH_DATA_DIR"}
    out: dict = {"cpu": cpu(), "load_before": load()}
    try:
        settings = IndexerSettings.from_env(env, data_dir=data_dir)
        with Pipeline(settings) as pipeline:
            report = pipeline.ingest([ROOT / "app" / "sample_corpus"])
            print(f"indexed {report.ok} files, {report.chunks} chunks with {pipeline.stats().serving_model}",
                  flush=True)
            pipeline.search("warm up", k=10)
            local = []
            for q in queries(args.queries, "in-"):
                t0 = time.perf_counter()
                pipeline.search(q, k=10)
                local.append((time.perf_counter() - t0) * 1000)
        out["in_process"] = summary(local)
        print(f"in-process search: {out['in_process']}", flush=True)
        server = start_server(data_dir, args.port, env)
        url = f"http://127.0.0.1:{args.port}/api/v1"
        try:
            remote, inside, overhead = [], [], []
            with httpx.Client(base_url=url, timeout=30) as http:
                http.get("/search", params={"q": "warm up", "k": 10}).raise_for_status()
                for q in queries(args.queries, "http-"):
                    t0 = time.perf_counter()
                    r = http.get("/search", params={"q": q, "k": 10})
                    total = (time.perf_counter() - t0) * 1000
                    r.raise_for_status()
                    remote.append(total)
                    inside.append(r.json()["took_ms"])  # the same search's Pipeline.search time in the server
                    overhead.append(total - inside[-1])
            out["http_sequential"] = summary(remote)
            out["server_pipeline_search"] = summary(inside)
            out["http_overhead"] = summary(overhead)
            print(f"HTTP search, one at a time: {out['http_sequential']}", flush=True)
            print(f"  of which Pipeline.search in the server: {out['server_pipeline_search']}", flush=True)
            print(f"  HTTP overhead per search (total - in-server): {out['http_overhead']}", flush=True)
            out["load"] = loadtest(url, args.clients, args.seconds)
            print(f"load, {args.clients} clients x {args.seconds:.0f} s: {out['load']}", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=60)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    out["load_after"] = load()
    print(f"load average after: {out['load_after']}")
    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    (ROOT / "bench" / "out" / "api_load.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

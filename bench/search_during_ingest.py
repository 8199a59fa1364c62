"""Search while an ingest runs in the app (issue 24 item 2): is search still fast, and is the ingest as fast?

The app is started as users run it (``python -m app.server``, headless, as ``tests/app/app_server.py`` does), once
per embedding mode, each on a fresh index seeded with a small corpus:

* ``in-process`` (``MOESEARCH_INGEST_EMBEDDING=in-process``): the path before issue 24 (the baseline): the ingest
  job embeds in the app's own process, beside the searches;
* ``worker`` (the default): the job embeds in a worker process ``MOESEARCH_INGEST_NICE`` steps nicer than the app,
  with ``MOESEARCH_INGEST_THREADS`` onnxruntime threads (default: all cores below 5, else cores - 1), see
  ``indexer/background.py``; ``worker:N`` is the same with N threads (``worker:1`` on 2 cores keeps a core free).

In each, headless Chromium (Playwright) searches the Search page (a fresh query each time: type it, press Enter,
wait for the results, read them for ``--think`` seconds) ``--idle`` times while nothing else runs, then an admin
starts an ingest of ``--pdfs`` generated PDFs (fpdf2, as ``bench/ingest_pdfs.py``) on the Ingest page ("Folder on
the server") and the searches go on until it finishes, while the admin's page shows the job's progress (the app
reruns its panel every ``PANEL_EVERY_S`` = 2.5 s, ``app/jobpanel.py``; ``--admin-leaves`` closes that page once
the job runs).  Both browsers run on the
app's machine, which users' browsers do not: rendering results back to back (``--think 0``) takes about one core of
a 2-core machine by itself, from the app and its ingest alike, so the searcher reads each page of results for
``--think`` seconds (Chromium run as root also raises some of its own threads' priority above the app's).  For
every search it records

* the browser round trip: from the Enter key to the end of the page's script run (measured in the page);
* the server-side search time (query embedding + store query), the "N passages · mode · T ms" the Search page
  prints under the query;

and for the ingest the pages/s of the job (the report the app keeps: ``data/app/last_ingest.json``), in the worker
mode with the worker's start (process and model load: the app's first job; a later one within
``MOESEARCH_INGEST_WORKER_IDLE_S`` finds it loaded).  The searches a job's end cut in two are dropped.  An open
progress page costs the app's process Python, whose GIL the searches share: refreshed every 0.5 s it took about
0.2 core (1.7 s of server CPU more during a 10 s ingest than with the page closed) and made most of the search
tail left in the worker mode (p95 94 ms during the ingest vs 22 ms idle); hence the 2.5 s refresh of a panel that
reads only the job's progress (docs/operations-ingest.md has the figures); ``--admin-leaves`` shows the
difference.  With ``--rounds R`` the
modes run R times, in reverse order every other round (the samples pooled, the median pages/s), so a change of the
machine's load does not favour the mode run first.
Pass lines (for each worker mode; RESULT is the first one's):

* server-side search p95 during the ingest <= 3x its idle p95 and <= 150 ms;
* browser round trip p95 during the ingest <= 2 s;
* ingest pages/s >= 0.8x the in-process baseline's (measured in the same run, on the same corpus).

The CPU, the core count and the load average are printed first and last: on a busy machine every number is
slower, and a process run at a lower priority (the worker) loses most to other work, so compare runs only on a
machine that is otherwise idle.

    .venv/bin/python bench/search_during_ingest.py                                # English model, 40 PDFs x 5 pages
    .venv/bin/python bench/search_during_ingest.py --model multilingual-e5-moe    # the shipped default model
    .venv/bin/python bench/search_during_ingest.py --pdfs 60 --idle 30 --json out.json
    .venv/bin/python bench/search_during_ingest.py --modes worker                 # one mode only (no ratio)
    .venv/bin/python bench/search_during_ingest.py --think 0                      # searches back to back
    .venv/bin/python bench/search_during_ingest.py --modes in-process worker worker:1 --rounds 2
    .venv/bin/python bench/search_during_ingest.py --admin-leaves                 # no progress page open

Needs Chromium at /usr/bin/chromium and playwright (``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests" / "app")]

from app_server import CHROMIUM, CHROMIUM_ARGS, sign_in, streamlit_app, wait_idle  # noqa: E402
from ingest_pdfs import make_corpus, vocabulary  # noqa: E402

from app.jobpanel import PANEL_EVERY_S  # noqa: E402
from embedder.cpu_variant import CpuInfo  # noqa: E402
from indexer.background import IN_PROCESS, WORKER, job_threads  # noqa: E402
from indexer.pipeline import Pipeline  # noqa: E402
from indexer.settings import IndexerSettings  # noqa: E402
from indexer.workers import available_cores  # noqa: E402

PASSWORD = "bench-admin-password-24"
SEARCH_BOX = "Ask a question or type some words..."
CAPTION = re.compile(r" · (hybrid|dense|keyword) · (\d+) ms")  # "N passages · mode · T ms" (or "N files · ...")
# In the page: the time from Enter in the search box to the end of the script run it starts.
OBSERVE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  window.__runs = 0; window.__rt = null; window.__t0 = null;
  window.__state = app.getAttribute('data-test-script-state');
  document.addEventListener('keydown', (e) => { if (e.key === 'Enter') window.__t0 = performance.now(); }, true);
  new MutationObserver(() => {
    const state = app.getAttribute('data-test-script-state');
    if (state === 'notRunning' && window.__state !== 'notRunning') {
      window.__runs += 1;
      if (window.__t0 !== null) { window.__rt = performance.now() - window.__t0; window.__t0 = null; }
    }
    window.__state = state;
  }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {available_cores()} cores"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class Searcher:
    """One browser tab on the Search page: a fresh query per search (no cached query vector helps)."""

    def __init__(self, browser, url: str, seed: int):
        self.page = browser.new_page(viewport={"width": 1360, "height": 1000})
        self.page.set_default_timeout(120_000)
        self.page.goto(url)
        wait_idle(self.page)
        self.page.evaluate(OBSERVE)
        self.rng = random.Random(seed)
        self.words = [w for w in vocabulary() if len(w) > 3][:3000]
        self.used: set[str] = set()

    def query(self) -> str:
        while True:
            q = " ".join(self.rng.choice(self.words) for _ in range(self.rng.randint(2, 4)))
            if q not in self.used:
                self.used.add(q)
                return q

    def search(self) -> tuple[float, float | None]:
        """One search: (browser round trip s, server-side search s or None when the page showed no timing)."""
        box = self.page.get_by_placeholder(SEARCH_BOX)
        box.fill(self.query())
        runs = self.page.evaluate("() => { window.__rt = null; return window.__runs; }")
        box.press("Enter")
        self.page.wait_for_function(f"window.__runs > {runs} && window.__rt !== null", polling=10)
        rt = self.page.evaluate("window.__rt") / 1000
        captions = self.page.locator("[data-testid='stCaptionContainer']", has_text=CAPTION)
        found = CAPTION.search(captions.first.inner_text()) if captions.count() else None
        return rt, int(found.group(2)) / 1000 if found else None


def seed_index(env: dict[str, str], seed_docs: Path) -> str:
    """Ingest the seed corpus before the app opens the store (it has one owner); the model's description."""
    with Pipeline(IndexerSettings.from_env(env)) as p:
        report = p.ingest([seed_docs])
        assert report.all_ok, report.to_dict()
        emb = p.embedder
        choice = f", {emb.cpu_choice.describe()}" if emb.cpu_choice else ""
        return f"{emb.model_id} ({emb.model_file.name} on {emb.provider}{choice})"


def run_mode(mode: str, args, tmp: Path, docs: Path, seed_docs: Path, pages: int, round_: int) -> dict:
    """One app run in ``mode`` ("in-process", "worker" or "worker:THREADS"): its samples and its ingest."""
    from playwright.sync_api import sync_playwright

    from app.auth import ENV_VAR, make_hash

    where, _, threads = mode.partition(":")
    data = tmp / f"data-{mode.replace(':', '-')}-{round_}"
    env = {"MOESEARCH_MODEL": args.model, "MOESEARCH_DATA_DIR": str(data), "MOESEARCH_DEVICE": "cpu",
           "MOESEARCH_INGEST_ROOTS": str(docs.parent), "MOESEARCH_INGEST_EMBEDDING": where,
           ENV_VAR: make_hash(PASSWORD)}
    env = {**{k: v for k, v in os.environ.items() if k.startswith(("MOESEARCH_", "QDRANT_"))}, **env}
    if threads:
        env["MOESEARCH_INGEST_THREADS"] = threads
    model = seed_index(env, seed_docs)
    report_file = data / "app" / "last_ingest.json"
    idle_rt, idle_srv, during_rt, during_srv, cut = [], [], [], [], 0
    log_file = tmp / f"app-{mode.replace(':', '-')}-{round_}.log"
    with streamlit_app(env, log_file, timeout=300) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            searcher = Searcher(browser, url, seed=round_ * 100 + args.modes.index(mode))
            searcher.search()  # the first search of a session loads what the page needs once: not counted
            for _ in range(args.idle):
                time.sleep(args.think)
                rt, srv = searcher.search()
                idle_rt.append(rt)
                idle_srv += [srv] if srv is not None else []
            admin = browser.new_page(viewport={"width": 1360, "height": 1000})
            admin.set_default_timeout(120_000)
            sign_in(admin, url, PASSWORD)
            wait_idle(admin)
            admin.get_by_role("tab", name="Folder on the server").click()
            path_box = admin.get_by_label("Folder or file path on the server", exact=True)
            path_box.fill(str(docs))
            path_box.press("Enter")
            wait_idle(admin)
            admin.get_by_role("button", name="Ingest path").click()
            admin.get_by_text(re.compile(r"Ingest (of|finished)")).first.wait_for()  # the job started
            if args.admin_leaves:
                admin.close()
            started = time.monotonic()
            while not report_file.exists():
                if time.monotonic() - started > args.timeout:
                    raise RuntimeError(f"the ingest did not finish within {args.timeout} s; see {log_file}")
                time.sleep(args.think)
                rt, srv = searcher.search()
                if report_file.exists():  # the job ended during this search: it was not wholly "during"
                    cut += 1
                    break
                during_rt.append(rt)
                during_srv += [srv] if srv is not None else []
        finally:
            browser.close()
    report = json.loads(report_file.read_text())
    if report["ok"] != args.pdfs or report["pages"] != pages:
        raise RuntimeError(f"the ingest did not index every page: {report['ok']} ok, {report['pages']} pages")
    return {"mode": mode, "model": model, "pages": report["pages"], "chunks": report["chunks"],
            "ingest_s": [report["seconds"]], "pages_per_s": [report["pages"] / report["seconds"]],
            "idle_rt": idle_rt, "idle_srv": idle_srv, "during_rt": during_rt, "during_srv": during_srv, "cut": cut}


def pooled(runs: list[dict]) -> dict:
    """The runs of one mode as one: samples pooled, pages/s and seconds the medians."""
    out = dict(runs[0])
    for key in ("idle_rt", "idle_srv", "during_rt", "during_srv", "ingest_s", "pages_per_s"):
        out[key] = [x for r in runs for x in r[key]]
    out["cut"] = sum(r["cut"] for r in runs)
    out["rates"] = out["pages_per_s"]
    out["ingest_s"], out["pages_per_s"] = float(np.median(out["ingest_s"])), float(np.median(out["pages_per_s"]))
    return out


def show(results: list[dict]) -> None:
    print(f"\n{'mode':<11} {'phase':<7} {'n':>3} {'search p50':>11} {'search p95':>11} {'browser p50':>12} "
          f"{'browser p95':>12}   ingest")
    for r in results:
        for phase in ("idle", "during"):
            srv, rt = r[f"{phase}_srv"], r[f"{phase}_rt"]
            each = f" (runs: {', '.join(f'{x:.2f}' for x in r['rates'])})" if len(r["rates"]) > 1 else ""
            ingest = (f"{r['pages']} pages, {r['chunks']} chunks in {r['ingest_s']:.1f} s = "
                      f"{r['pages_per_s']:.2f} pages/s{each}" if phase == "during" else "")
            print(f"{r['mode']:<11} {phase:<7} {len(rt):>3} {pct(srv, 50) * 1000:>8.0f} ms "
                  f"{pct(srv, 95) * 1000:>8.0f} ms {pct(rt, 50):>10.2f} s {pct(rt, 95):>10.2f} s   {ingest}")
    print("(search: server-side search time, as the Search page prints it; browser: Enter -> results shown)")


def verdict(results: list[dict]) -> bool:
    """Pass lines for each worker mode; True when the first one passes them all."""
    base = next((r for r in results if r["mode"] == IN_PROCESS), None)
    workers = [r for r in results if r["mode"] != IN_PROCESS]
    if base is not None:
        slow = pct(base["during_srv"], 95) / max(pct(base["idle_srv"], 95), 1e-9)
        print(f"\nbaseline (in-process): server-side search p95 {slow:.1f}x its idle p95 during the ingest; "
              f"browser p95 {pct(base['during_rt'], 95):.2f} s")
    if not workers:
        print("no worker-mode run: no pass lines")
        return True
    verdicts = [lines_for(worker, base) for worker in workers]
    passed = verdicts[0]
    print(f"RESULT: {'PASS' if passed else 'FAIL'} ({workers[0]['mode']})")
    return passed


def lines_for(worker: dict, base: dict | None) -> bool:
    lines = []
    idle95, during95 = pct(worker["idle_srv"], 95) * 1000, pct(worker["during_srv"], 95) * 1000
    lines.append((during95 <= 3 * idle95 and during95 <= 150,
                  f"server-side search p95 during the ingest {during95:.0f} ms <= 3x idle p95 ({3 * idle95:.0f} ms) "
                  f"and <= 150 ms"))
    rt95 = pct(worker["during_rt"], 95)
    lines.append((rt95 <= 2.0, f"browser round trip p95 during the ingest {rt95:.2f} s <= 2 s"))
    if base is not None:
        ratio = worker["pages_per_s"] / base["pages_per_s"]
        lines.append((ratio >= 0.8, f"ingest {worker['pages_per_s']:.2f} pages/s >= 0.8x the in-process "
                      f"{base['pages_per_s']:.2f} pages/s ({ratio:.2f}x)"))
    if not worker["idle_srv"] or not worker["during_srv"]:
        lines.append((False, "no server-side search time was read from the Search page (its caption: CAPTION)"))
    if len(worker["during_rt"]) < 5:
        lines.append((False, f"only {len(worker['during_rt'])} searches during the ingest: use more --pdfs"))
    print(f"\n{worker['mode']}: {sum(ok for ok, _ in lines)}/{len(lines)} pass lines")
    for ok, text in lines:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return all(ok for ok, _ in lines)


def mode_arg(text: str) -> str:
    where, _, threads = text.partition(":")
    if where not in (IN_PROCESS, WORKER) or (threads and (where != WORKER or not threads.isdigit())):
        raise argparse.ArgumentTypeError(f"expected in-process, worker or worker:THREADS, got {text!r}")
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm-moe-upcycled", help="MOESEARCH_MODEL (a folder or a name under "
                    "models/; default: the English model)")
    ap.add_argument("--pdfs", type=int, default=40, help="PDFs the measured ingest adds (default 40)")
    ap.add_argument("--pages", type=int, default=5, help="pages per PDF (default 5)")
    ap.add_argument("--seed-pdfs", type=int, default=10, help="PDFs in the index before the app starts")
    ap.add_argument("--idle", type=int, default=20, help="searches while nothing else runs (default 20)")
    ap.add_argument("--think", type=float, default=1.0, help="seconds a user reads the results before the next "
                    "search (default 1; 0: back to back)")
    ap.add_argument("--modes", nargs="+", default=[IN_PROCESS, WORKER], type=mode_arg,
                    help="in-process, worker or worker:THREADS, run in this order (default: in-process worker)")
    ap.add_argument("--rounds", type=int, default=1, help="runs of every mode, alternating the order (default 1)")
    ap.add_argument("--admin-leaves", action="store_true", help="close the admin's page once the job runs (default: "
                    "it stays open, showing the progress)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds an ingest may take")
    ap.add_argument("--json", type=Path, help="also write the samples and results here")
    args = ap.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    settings = IndexerSettings.from_env()
    print(f"CPU: {CpuInfo.read().describe()}")
    print(f"start: {load()}")
    print(f"model {args.model}; the worker mode: nice +{settings.ingest_nice}, "
          f"{job_threads(settings.ingest_threads)} onnxruntime threads (MOESEARCH_INGEST_NICE / _THREADS); "
          f"{args.think:g} s between searches (--think); the admin's progress page "
          f"{'closed once the job runs' if args.admin_leaves else f'open (refreshed every {PANEL_EVERY_S:g} s)'}")
    with tempfile.TemporaryDirectory(prefix="moesearch-bench-search-ingest-") as name:
        tmp = Path(name)
        docs, seed_docs = tmp / "corpus" / "docs", tmp / "seed"
        docs.mkdir(parents=True)
        seed_docs.mkdir()
        pages = make_corpus(docs, args.pdfs, args.pages, seed=0)
        make_corpus(seed_docs, args.seed_pdfs, args.pages, seed=1)
        print(f"corpus: {args.pdfs} PDFs x {args.pages} pages = {pages} pages ingested while searching; "
              f"{args.seed_pdfs} PDFs in the index before", flush=True)
        runs: dict[str, list[dict]] = {mode: [] for mode in args.modes}
        for round_ in range(args.rounds):
            for mode in args.modes if round_ % 2 == 0 else args.modes[::-1]:
                print(f"\n[{mode}, round {round_ + 1}] {load()}", flush=True)
                result = run_mode(mode, args, tmp, docs, seed_docs, pages, round_)
                runs[mode].append(result)
                print(f"[{mode}, round {round_ + 1}] {result['model']}: ingest {result['pages_per_s'][0]:.2f} "
                      f"pages/s, {len(result['during_rt'])} searches during it, {len(result['idle_rt'])} idle",
                      flush=True)
        results = [pooled(runs[mode]) for mode in args.modes]
    show(results)
    passed = verdict(results)
    print(f"end: {load()}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": CpuInfo.read().describe(), "load_end": os.getloadavg(),
                                         "args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                                        indent=1))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

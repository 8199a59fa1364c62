"""``python -m indexer ingest|search|similar|documents|delete|stats|reindex|gc`` (exit 0 ok, 1 some files failed or
nothing matched, 2 usage or store error, 130 cancelled by Ctrl-C)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from .client import remote_pipeline
from .diskspace import describe, disk_error
from .pipeline import (
    AmbiguousTarget,
    IndexerError,
    Pipeline,
    ProgressEvent,
    ReindexCancelled,
    SearchFilters,
    StoreError,
)
from .relevance import best_similarity, calibration_for, good_match, relevance_label
from .search import MAX_K
from .settings import IndexerSettings
from .store.base import MODES

OK, SOME_FAILED, USAGE_OR_STORE, CANCELLED = 0, 1, 2, 130


@contextlib.contextmanager
def _cancel_on_ctrl_c(cancel: threading.Event):
    """The first Ctrl-C (SIGINT) sets ``cancel`` (the file in progress is rolled back, the rest not attempted);
    a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print("\ncancelling: the file in progress is rolled back (Ctrl-C again to stop at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m indexer", description="Index documents into Qdrant and search "
                                "them (settings: MOESEARCH_* and QDRANT_* environment variables).")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = p.add_subparsers(dest="command", required=True)
    ing = sub.add_parser("ingest", help="index files and folders (folders recurse)")
    ing.add_argument("paths", nargs="+")
    ing.add_argument("--json", action="store_true", help="print the ingest report as JSON")
    ing.add_argument("--workers", type=_positive, default=1, metavar="N",
                     help="embed in N worker processes, each with cores/N onnxruntime threads (bulk ingest of "
                          "large corpora; default 1: embed in this process)")
    ing.set_defaults(func=cmd_ingest, cancellable=True)
    s = sub.add_parser("search", help="search the index")
    s.add_argument("query")
    s.add_argument("--k", type=int, default=10, help=f"number of hits (1..{MAX_K})")
    s.add_argument("--mode", choices=MODES, default="hybrid")
    s.add_argument("--source", action="append", default=[], help="only this file name (repeatable)")
    s.add_argument("--type", action="append", default=[], dest="doc_types", help="only this document type "
                   "(pdf, txt, md, html, docx; repeatable)")
    s.add_argument("--from", dest="ingested_from", help="ingested on or after (ISO date or datetime)")
    s.add_argument("--to", dest="ingested_to", help="ingested on or before (ISO date or datetime)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_search, reads=True)
    sim = sub.add_parser("similar", help="the documents most like one document (doc_id, path or file name)")
    sim.add_argument("target")
    sim.add_argument("--k", type=int, default=5, help=f"number of documents (1..{MAX_K})")
    sim.add_argument("--json", action="store_true")
    sim.set_defaults(func=cmd_similar, reads=True)
    d = sub.add_parser("delete", help="delete a document by doc_id, path or file name (a name several documents "
                       "share is refused: give the doc_id or the full path)")
    d.add_argument("target")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_delete)
    for name, text, func in (("stats", "documents, chunks, backend", cmd_stats),
                             ("documents", "list the indexed documents", cmd_documents)):
        c = sub.add_parser(name, help=text)
        c.add_argument("--json", action="store_true")
        c.set_defaults(func=func, reads=True)
    r = sub.add_parser("reindex", help="re-embed everything with the configured model (or --model), then switch to "
                       "it; searches use the old index until then, ingest and delete go on")
    r.add_argument("--force", action="store_true", help="rebuild even if the index matches the settings")
    r.add_argument("--model", help="build with this model instead: a folder, a published NAME or NAME@VERSION "
                   "(a previous version = rollback; the name's current pointer follows)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_reindex, cancellable=True)
    g = sub.add_parser("gc", help="drop the collections search does not use (previous indexes kept for rollback, "
                       "unfinished reindexes)")
    g.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    g.add_argument("--models", action="store_true", help="also remove published model versions no index uses "
                   "(never a name's current version)")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_gc)
    p.set_defaults(reads=False, cancellable=False)
    return p


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _bar(enabled: bool):
    if not enabled:
        return None, None
    from tqdm.auto import tqdm

    bar = tqdm(total=0, unit="file", desc="ingest", file=sys.stderr)

    def progress(event: ProgressEvent) -> None:
        bar.total = event.files_total or bar.total
        if event.stage == "done":
            bar.update(event.files_done - bar.n)
        bar.set_postfix_str(event.message[:60], refresh=True)

    return bar, progress


def _print_report(report, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    for f in report.files:
        detail = f"{f.pages} pages, {f.chunks} chunks" if f.status == "ok" else f.reason
        print(f"{f.status:<9} {f.name}  {detail}")
        if f.status == "ok" and f.reason:  # kept both / replaced an upload of the same name
            print(f"{'':<9} {f.reason}")
        for note in f.notes:
            print(f"{'':<9} note: {note}")
        if f.replaced:
            print(f"{'':<9} replaced the previous version ({', '.join(d[:12] for d in f.replaced)})")
    print(f"{report.ok} ok, {report.duplicates} unchanged/duplicate, {report.skipped} skipped, {report.failed} failed; "
          f"{report.pages} pages, {report.chunks} chunks in {report.seconds:.1f} s")
    if report.store_error:
        print(f"store error: {report.store_error}", file=sys.stderr)


def _snippet(text: str, width: int = 220) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 3] + "..."


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        settings = args.settings = IndexerSettings.from_env()
        args.cancel = threading.Event()  # ingest, reindex: the first Ctrl-C cancels (also while the model loads)
        guard = _cancel_on_ctrl_c(args.cancel) if args.cancellable else contextlib.nullcontext()
        remote = remote_pipeline(settings)  # a running service (the app, `python -m api serve`) owns the data folder
        if remote is not None and args.verbose:
            print(f"note: sending the command to the service at {remote.url}", file=sys.stderr)
        with guard, (remote or Pipeline(settings, read_only=args.reads)) as pipeline:
            if pipeline.read_only:
                print(f"note: the data folder's disk is read-only or full: reading a copy of the index "
                      f"({pipeline.root.location})", file=sys.stderr)
            return args.func(pipeline, args)
    except (StoreError, IndexerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_OR_STORE
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_OR_STORE
    except OSError as exc:  # a full disk, a read-only or unwritable data folder: one line, no traceback
        if disk_error(exc) is None:
            raise
        print(f"error: {describe(disk_error(exc))}; the index is unchanged (free some space, or make the data "
              "folder, MOESEARCH_DATA_DIR, writable, and try again)", file=sys.stderr)
        return USAGE_OR_STORE


def cmd_ingest(pipeline: Pipeline, args) -> int:
    bar, progress = _bar(not args.json and sys.stderr.isatty())
    try:
        report = pipeline.ingest(args.paths, progress=progress, workers=args.workers, cancel=args.cancel)
    finally:
        if bar is not None:
            bar.close()
    _print_report(report, args.json)
    if report.store_error:
        return USAGE_OR_STORE
    if args.cancel.is_set():
        print("cancelled: files done before Ctrl-C are kept; those marked 'not attempted' were not read",
              file=sys.stderr)
        return CANCELLED
    return OK if report.all_ok else SOME_FAILED


def cmd_search(pipeline: Pipeline, args) -> int:
    filters = SearchFilters(tuple(args.source), tuple(args.doc_types), args.ingested_from, args.ingested_to)
    hits = pipeline.search(args.query, k=args.k, filters=filters, mode=args.mode)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], indent=2))
        return OK
    if not hits:
        print("no hits")
        return OK
    # the search page's judgement: relevance labels instead of RRF / BM25 numbers, and "no good match"
    cal = calibration_for(pipeline.stats().model_id, args.settings.min_similarity)
    sims = [h.similarity for h in hits]
    best = best_similarity(sims)
    if not good_match(sims, cal):
        print(f"no good match: the closest passage is no nearer to the query than nonsense gets (similarity "
              f"{best:.2f}, below this model's {cal.no_match:.2f}); the closest passages:")
    for rank, h in enumerate(hits, 1):
        label = relevance_label(h.similarity, cal, h.score, best).label
        print(f"{rank:>2}. {label:<14} {h.source} p.{h.page}  [{', '.join(h.matched_terms)}]")
        print(f"    {_snippet(h.text)}")
    return OK


def cmd_similar(pipeline: Pipeline, args) -> int:
    found = pipeline.similar(args.target, k=args.k)
    if args.json:
        print(json.dumps([{"score": s.score, **s.doc.to_dict()} for s in found], indent=2))
        return OK
    for rank, s in enumerate(found, 1):
        print(f"{rank:>2}. {s.score:.4f}  {s.doc.source}  ({s.doc.doc_type}, {s.doc.pages} p, {s.doc.doc_id[:12]})")
    if not found:
        print("no other documents")
    return OK


def cmd_delete(pipeline: Pipeline, args) -> int:
    try:
        removed = pipeline.delete(args.target)
    except AmbiguousTarget as exc:
        if args.json:
            print(json.dumps({"deleted": [], "ambiguous": [d.to_dict() for d in exc.matches]}, indent=2))
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_OR_STORE
    if args.json:
        print(json.dumps({"deleted": removed}))
    else:
        print(f"deleted {len(removed)} document(s)" if removed else f"no document matches {args.target!r}")
    return OK if removed else SOME_FAILED


def cmd_stats(pipeline: Pipeline, args) -> int:
    stats = pipeline.stats()
    if args.json:
        print(json.dumps(stats.to_dict(), indent=2))
        return OK
    print(f"{stats.documents} documents, {stats.chunks} chunks; backend {stats.backend} at {stats.location}; "
          f"collection {stats.collection} (model {stats.model_id}, {stats.dim}d)")
    print(f"serving model {stats.serving_model}; current model {stats.current_model}"
          f"{' (stale: re-index)' if stats.stale else ''}")
    if stats.extra.get("current_model_error"):
        print(f"current model: {stats.extra['current_model_error']}")
    if variant := stats.extra.get("onnx_variant"):
        print(f"ONNX variant: {variant['summary']}")
    if stats.reindex_needed:
        print(f"settings ask for model {stats.current_model} ({stats.configured_model_id}): run "
              "`python -m indexer reindex`")
    if stats.incomplete_chunks:
        print(f"{stats.incomplete_chunks} chunks of interrupted ingests are hidden; ingest those files again")
    return OK


def cmd_documents(pipeline: Pipeline, args) -> int:
    docs = pipeline.documents()
    if args.json:
        print(json.dumps([d.to_dict() for d in docs], indent=2))
        return OK
    for d in docs:
        print(f"{d.doc_id[:12]}  {d.doc_type:<4} {d.pages:>5} p {d.chunks:>6} ch  {d.ingested_at[:19]}  {d.source}")
    print(f"{len(docs)} documents")
    return OK


def cmd_reindex(pipeline: Pipeline, args) -> int:
    bar, progress = _bar(not args.json and sys.stderr.isatty())
    try:
        report = pipeline.reindex(progress=progress, force=args.force, model=args.model, cancel=args.cancel)
    except ReindexCancelled as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return CANCELLED
    finally:
        if bar is not None:
            bar.close()
    if not report.files and not args.json:
        print("the index already matches the settings (use --force to rebuild anyway)")
    else:
        _print_report(report, args.json)
    if not args.json:
        print(f"serving model: {pipeline.stats().serving_model}")
    return OK if report.all_ok else SOME_FAILED


def cmd_gc(pipeline: Pipeline, args) -> int:
    plan = pipeline.gc(dry_run=args.dry_run, models=args.models)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
        return OK
    verb = "would drop" if plan.dry_run else "dropped"
    for c in plan.collections:
        print(f"{verb} collection {c.name} ({c.state}, model {c.model or 'unknown'}, {c.documents} documents)")
    for label, folder in zip(plan.model_versions, plan.model_folders, strict=True):
        print(f"{'would remove' if plan.dry_run else 'removed'} model {label} ({folder})")
    print(f"{verb} {len(plan.collections)} collection(s)"
          + (f", {len(plan.model_versions)} model version(s)" if args.models else ""))
    return OK

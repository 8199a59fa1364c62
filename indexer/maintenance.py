"""Reindex and garbage collection of a pipeline's store: building a new collection beside the serving one and
switching to it (``reindex``), listing the collections (``CollectionInfo``) and dropping what no longer serves
(``gc``).

The collaborators are explicit: the store ``root``, the settings, the model tracker (``model_view.ModelTracker``:
the model the settings name now, and loading another one), the runner whose ingest loops rebuild the documents
(``runner.IngestRunner``), the pipeline's write lock, ``current`` (the serving ``Active``) and ``switch`` (makes a
new ``Active`` serve, in one step under the pipeline's exclusive lock).  ``reindex.py`` holds the rebuild itself.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .encoders import Encoders
from .model_view import ModelTracker
from .reindex import BUILDING, READY, Rebuild, ReindexCancelled, keep_after_switch, read_meta, spec_of
from .results import IndexerError, IngestReport, ProgressEvent
from .runner import IngestRunner
from .schema import DOC_RECORDS, META_ID, IndexSpec
from .serving import Active, create_collection
from .settings import IndexerSettings
from .store import Collection, PointRecord, Root, StoreError

log = logging.getLogger(__name__)
Progress = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class CollectionInfo:
    """One collection of the store, as ``python -m indexer gc`` and the Status page list them."""

    name: str
    state: str  # active | ready (a previous index, kept for rollback) | building (unfinished reindex) | unknown
    model: str  # name@version of the model that built it ("" without metadata)
    documents: int
    model_dir: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "state": self.state, "model": self.model, "documents": self.documents,
                "model_dir": self.model_dir}


def describe(root: Root, name: str, active: str | None) -> CollectionInfo:
    """What a collection holds; never raises (an unreadable one is ``unknown``)."""
    try:
        col = root.open(name)
        spec, state = read_meta(col)
        docs = col.count(DOC_RECORDS)
    except (StoreError, OSError, ValueError, KeyError) as exc:
        log.warning("cannot read collection %s: %s", name, exc)
        return CollectionInfo(name, "unknown", "", 0)
    if spec is None:
        return CollectionInfo(name, "unknown", "", docs)
    return CollectionInfo(name, "active" if name == active else (state or "unknown"), spec.model_label, docs,
                          spec.model_dir)


@dataclass(frozen=True)
class GcReport:
    """What ``gc`` dropped (or, with ``dry_run``, would drop)."""

    collections: tuple[CollectionInfo, ...]
    model_versions: tuple[str, ...]  # name@version
    model_folders: tuple[str, ...]
    dry_run: bool

    def to_dict(self) -> dict:
        return {"dry_run": self.dry_run, "collections": [c.to_dict() for c in self.collections],
                "model_versions": list(self.model_versions), "model_folders": list(self.model_folders)}


def unused_collections(root: Root, active: str | None, busy: Iterable[str] = ()) -> list[CollectionInfo]:
    """The collections a garbage collection may drop: all but the active one and any being built right now."""
    skip = {active, *busy}
    return [describe(root, name, active) for name in root.collections() if name not in skip]


def registry_roots(specs: Iterable[IndexSpec]) -> set[Path]:
    """The registry folders (``models/NAME``) of the published models these specs were built with."""
    return {Path(s.model_dir).parent for s in specs if s.model_name and s.model_dir}


class Maintenance:
    """One reindex at a time (``running``); ingest and delete go on while it runs."""

    def __init__(self, root: Root, settings: IndexerSettings, models: ModelTracker, runner: IngestRunner,
                 write: threading.RLock, current: Callable[[], Active], switch: Callable[[Active], None]):
        self.root = root
        self.settings = settings
        self.models = models
        self.runner = runner
        self._write = write
        self._current = current
        self._switch = switch
        self._reindexing = threading.Lock()

    @property
    def running(self) -> bool:
        """Whether a reindex is running now."""
        return self._reindexing.locked()

    def reindex(self, progress: Progress | None, force: bool, model: str | os.PathLike | None,
                cancel: threading.Event | None, background: bool) -> IngestReport:
        """See ``Pipeline.reindex``."""
        if not self._reindexing.acquire(blocking=False):
            raise IndexerError("a reindex is already running; wait for it to finish")
        try:
            return self._reindex(progress, force, model, cancel, background)
        finally:
            self._reindexing.release()

    def _reindex(self, progress: Progress | None, force: bool, model, cancel: threading.Event | None,
                 background: bool) -> IngestReport:
        t0 = time.perf_counter()
        if model is None:
            self.models.poll(force=True)
            if self.models.error:
                raise IndexerError(f"cannot reindex: {self.models.error}")
        embedder = self.models.embedder if model is None else self.models.load(model, self._serving())
        target = spec_of(embedder, self.settings)
        with self._write:
            old = self._current()
            if old.spec.same_index(target) and not force:
                if model is not None:
                    self.models.follow(embedder)
                return IngestReport((), 0.0)
            new = self._building(target, old.collection.name, fresh=force)
        log.info("reindex: building %s with %s", new.name, target.model_label)
        encoders = Encoders(embedder, target)
        rebuild = Rebuild(old.collection, new, encoders,
                          lambda writer: self.runner.loop(writer, progress, cancel=cancel), cancel,
                          feed=self.runner.feed(1, background))
        try:
            rebuild.catch_up()  # without the write lock: ingest and delete go on in the serving index
            self.runner.maybe_optimize(new, progress or (lambda _e: None))
            rebuild.check_cancelled()
            with self._write:
                statuses = rebuild.finish()
                new.upsert([PointRecord(META_ID, target.to_payload(READY))])
                self._switch(Active(new, target, encoders))
                if not keep_after_switch(old.spec):
                    self.root.drop(old.collection.name)
        except ReindexCancelled:
            raise  # the half-built collection stays for the next reindex (it is labelled building)
        except BaseException:
            if self.root.active() != new.name:
                self.root.drop(new.name)
            raise
        if model is not None:
            self.models.follow(embedder)
        return IngestReport(tuple(statuses), time.perf_counter() - t0)

    def _serving(self):
        encoders = self._current().encoders
        return encoders.embedder if encoders is not None else self.models.embedder

    def _building(self, target: IndexSpec, active: str, fresh: bool) -> Collection:
        """The collection to build ``target`` into: the one already named for it (a killed reindex, or the index
        kept from before a switch) unless ``fresh``, else a new one."""
        name = target.collection_name(self.settings.collection)
        if name == active:
            name = f"{name}-r{int(time.time())}"
        elif not fresh and name in self.root.collections():
            col = self.root.open(name)
            spec, state = read_meta(col)
            if spec is not None and spec.same_index(target):
                log.info("reindex: continuing in %s (%s)", name, state)
                col.upsert([PointRecord(META_ID, target.to_payload(BUILDING))])
                return col
        return create_collection(self.root, self.settings, name, target, BUILDING)

    def collections(self) -> list[CollectionInfo]:
        """Every collection of the store: the active one, previous ones kept for rollback, unfinished ones."""
        active = self.root.active()
        return [describe(self.root, name, active) for name in self.root.collections()]

    def gc(self, dry_run: bool, models: bool) -> GcReport:
        """See ``Pipeline.gc``."""
        with self._write:
            if self.running:
                raise IndexerError("a reindex is running; run gc after it")
            active = self._current()
            drop = unused_collections(self.root, active.collection.name)
            versions: list[tuple[Path, str]] = []
            if models:
                from embedder.registry import removable

                specs = [active.spec, spec_of(self.models.embedder, self.settings)]
                for info in drop:
                    found = read_meta(self.root.open(info.name))[0]
                    specs += [found] if found is not None else []
                for root in sorted(registry_roots(specs)):
                    versions += [(root, v) for v in removable(root, {active.spec.model_version})]
            if not dry_run:
                from embedder.registry import remove_version

                for info in drop:
                    self.root.drop(info.name)
                for root, version in versions:
                    remove_version(root, version)
        return GcReport(tuple(drop), tuple(f"{root.name}@{v}" for root, v in versions),
                        tuple(str(root / v) for root, v in versions), dry_run)

"""Which collection serves searches, and with which model.

``Active`` is the serving collection, its index spec and the encoders that embed queries for it (the model that
built it, which may be an older one than the settings name now: it keeps serving until a reindex).  ``open_active``
finds it when a pipeline opens the store (creating the first collection of an empty store), and drops what a crash
left behind where one process owns the store's folder; ``create_collection`` makes a collection with its metadata
point (also what a reindex builds into).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .encoders import Encoders
from .reindex import read_meta
from .schema import META_ID, IndexSpec, collection_spec
from .settings import IndexerSettings
from .store import Collection, PointRecord, Root, StoreError

log = logging.getLogger(__name__)


@dataclass
class Active:
    collection: Collection
    spec: IndexSpec
    encoders: Encoders | None  # None: the model that built this index cannot be loaded (reindex needed)


def create_collection(root: Root, settings: IndexerSettings, name: str, spec: IndexSpec, state: str) -> Collection:
    """A new collection for ``spec``, labelled ``state`` in its metadata point."""
    col = root.create(name, collection_spec(spec, settings))
    col.upsert([PointRecord(META_ID, spec.to_payload(state))])
    return col


def open_active(root: Root, settings: IndexerSettings, embedder, target: IndexSpec,
                load: Callable[[Path, int | None], object]) -> Active:
    """The serving collection of ``root`` (a new, empty one if it has none) with encoders for it: ``embedder`` when
    the index matches ``target`` (what the settings ask for), else the model that built it, loaded by ``load``."""
    name = root.active()
    if name is None:
        name = target.collection_name(settings.collection)
        col = create_collection(root, settings, name, target, "ready")
        root.activate(name)
        return Active(col, target, Encoders(embedder, target))
    if root.owns_folder:  # no other process writes here: a collection without metadata is a crash's leftover
        for other in root.collections():  # (kept: previous indexes for rollback, resumable reindexes)
            if other != name and read_meta(root.open(other))[0] is None:
                log.warning("dropping %s, left over by an interrupted reindex", other)
                root.drop(other)
    col = root.open(name)
    meta = col.retrieve([META_ID])
    if not meta:
        raise StoreError(f"collection {name!r} at {root.location} has no moesearch metadata")
    spec = IndexSpec.from_payload(meta[0].payload)
    if spec.same_index(target):
        return Active(col, spec, Encoders(embedder, target))
    log.warning("the index %s was built with %s; settings ask for %s: run `python -m indexer reindex`",
                name, spec.identity(), target.identity())
    return Active(col, spec, encoders_for(spec, embedder, target, load))


def encoders_for(spec: IndexSpec, embedder, target: IndexSpec,
                 load: Callable[[Path, int | None], object]) -> Encoders | None:
    """Encoders matching an older index, so it keeps serving (with the model that built it) until a reindex;
    None if that model cannot be loaded.  An index without a recorded version (older moesearch) is served by
    the configured model when the model id matches, as before versions were recorded."""
    if (spec.model_id == target.model_id and spec.dim == target.dim
            and spec.model_version in ("", target.model_version)):
        return Encoders(embedder, spec)
    folder = Path(spec.model_dir) if spec.model_dir else None
    if folder is None or not (folder / "moesearch.json").is_file():
        return None
    try:
        old = load(folder, spec.dim)
    except (OSError, ValueError, RuntimeError) as exc:
        log.warning("cannot load %s to serve the old index: %s", folder, exc)
        return None
    same = old.model_id == spec.model_id and spec.model_version in ("", old.model_version)
    return Encoders(old, spec) if same else None

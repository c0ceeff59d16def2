"""The crash-safe rebuild of a whole model in place (a ``table``, or an ``incremental`` model built in full).

No ``renameCollection`` (the embedded SecantusDB moves documents one by one in a rename, so a crash there
duplicated keys). Instead, in this order:

1. a collection with documents gets its unique index on ``unique_key`` (a view of that name is dropped first);
2. the pipeline's result, every document stamped with this run's ``_run_id``, is written on ``unique_key``,
   streamed through the client in bulk requests: into an empty collection (a first build) as inserts, every
   index built afterwards (SecantusDB inserts ~4x faster without the unique index, and the client writes
   each key once); into a collection of up to ``COMPARE_LIMIT`` documents as replace-or-insert
   by key, except documents whose content (all but ``_id``, ``_updated_at``, ``_run_id``) equals the stored
   one, which are left untouched. A bigger collection gets the result by a server-side ``$merge`` (an existing
   key gets this run's document, its ``_id`` kept). On SecantusDB a ``$merge`` costs ~0.7 ms per document
   inserted and ~1.2 ms per document replaced; a bulk insert from the client ~0.1 ms, a skipped one nothing;
3. the keys are checked: a key the result holds twice (seen by the client, or flagged by the ``$merge``) fails
   the model;
4. the keys the result no longer has are deleted (by ``_id``, or as the documents of earlier runs after a
   ``$merge``), and a count checks that none is left.

A crash at any instant leaves each key with either its old or its new document (never two: the unique index
exists before the first write over stored documents, and a first build writes each key once), and the
model's state unrecorded (the caller records it after this returns), so the next run rebuilds it (its unique
index first) and deletes what the crash left.
``elt.failpoint`` names the points between the steps (``<model>:full:start|merged|verified|deleted``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, InsertOne, ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError

from elt.errors import TransformError
from elt.failpoint import failpoint
from elt.models.project import ModelNode

log = logging.getLogger(__name__)

#: Documents written per bulk request.
WRITE_BATCH = 1000
#: Raw documents: the pipeline's output is written back byte for byte (no decode/encode of values).
_RAW = CodecOptions(document_class=RawBSONDocument)


def ensure_indexes(db: Database, model: ModelNode, collection: str | None = None) -> None:
    """Indexes of a model's output: unique key, partition/event_time, declared ones and ``_updated_at``.

    A key pattern is created once (MongoDB refuses a second index on the same keys with other options).
    """
    coll = db[collection or model.collection]
    spec = model.spec
    created: set[tuple[str, ...]] = set()
    if spec.unique_key:
        coll.create_index([(k, ASCENDING) for k in spec.unique_key], unique=True, name="unique_key")
        created.add(tuple(spec.unique_key))
    wanted = [list(index) for index in spec.indexes]
    if spec.partition_by:
        wanted.append(spec.partition_by + ([spec.event_time] if spec.event_time else []))
    if spec.retain is not None and spec.event_time:  # every run deletes the outputs older than the kept span
        wanted.append([spec.event_time])
    wanted.append(["_updated_at"])
    for keys in wanted:
        if tuple(keys) not in created:
            coll.create_index([(k, ASCENDING) for k in keys])
            created.add(tuple(keys))


#: Set by a rebuild's ``$merge`` on a document whose key this same run already wrote (a duplicate key in
#: the pipeline's result); ``verify_keys`` refuses the build.
DUPLICATE_FLAG = "_elt_duplicate_key"


def _replace_stage(model: ModelNode, run_id: str) -> dict[str, Any]:
    """``$merge`` of a rebuild: every key gets this run's document (its ``_id`` kept when it existed)."""
    # the existing _id last: it wins even where a server gives $$new an _id of its own
    replace = {"$mergeObjects": ["$$new", {"_id": "$_id"}]}
    flagged = {"$mergeObjects": ["$$new", {DUPLICATE_FLAG: True, "_id": "$_id"}]}
    merge: dict[str, Any] = {"into": model.collection, "whenNotMatched": "insert",
                             "whenMatched": [{"$replaceWith": {"$cond": [{"$eq": ["$_run_id", run_id]},
                                                                         flagged, replace]}}]}  # fmt: skip
    if model.spec.unique_key:
        merge["on"] = model.spec.unique_key
    return {"$merge": merge}


def verify_keys(db: Database, model: ModelNode, query: dict[str, Any]) -> int:
    """Documents matching ``query``; a TransformError when a ``unique_key`` value is duplicated, either as two
    documents or as one a rebuild's ``$merge`` flagged. Read on the client: the same check on every server."""
    keys = list(model.spec.unique_key or [])
    seen: set[tuple[str, ...]] = set()
    duplicates: list[tuple[str, ...]] = []
    count = 0
    for doc in db[model.collection].find(query, {**{k: 1 for k in keys}, DUPLICATE_FLAG: 1}):
        count += 1
        key = tuple(repr(doc.get(k)) for k in keys)
        if doc.get(DUPLICATE_FLAG) or (keys and key in seen):
            duplicates.append(key)
        seen.add(key)
    if duplicates:
        raise _duplicate_error(model, duplicates)
    return count


def _duplicate_error(model: ModelNode, duplicates: list[tuple[str, ...]]) -> TransformError:
    shown = ", ".join("(" + ", ".join(key) + ")" for key in duplicates[:3])
    return TransformError(
        f"{model.path}: model '{model.name}': unique_key {list(model.spec.unique_key or [])} is not unique "
        f"({len(duplicates)} duplicated, e.g. {shown}); not recorded as built. Fix the pipeline's grouping or "
        "the key; the next elt transform rebuilds the model"
    )


def _server_error(model: ModelNode, exc: OperationFailure) -> TransformError:
    detail = exc.details.get("errmsg", exc) if exc.details else exc
    return TransformError(f"{model.path}: model '{model.name}' failed on the server: {detail}")


#: Server error codes of a duplicate key (a write, or a unique index built over duplicated keys).
DUPLICATE_KEY_CODES = (11000, 11001, 12582)


def prepare_target(db: Database, model: ModelNode, indexes: bool = True) -> None:
    """The model's collection ready for writes: a view of that name dropped, and (``indexes``) its indexes.

    A collection whose keys are already duplicated (left by an older, non-atomic swap) cannot get its unique
    index: it is emptied and rebuilt, with a warning.
    """
    info = next(db.list_collections(filter={"name": model.collection}), None)
    if info and info.get("type") == "view":
        db.drop_collection(model.collection)
    if not indexes:
        return
    try:
        ensure_indexes(db, model)
    except OperationFailure as exc:
        if exc.code not in DUPLICATE_KEY_CODES and "duplicate" not in str(exc).lower():
            raise
        log.warning("%s: duplicate unique_key values in the existing collection (an earlier crash?): "
                    "rebuilding it from empty", model.name)  # fmt: skip
        db[model.collection].delete_many({})
        ensure_indexes(db, model)


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, (dict, list, RawBSONDocument)) else value


def _batches(cursor: Any) -> Iterator[list[RawBSONDocument]]:
    batch: list[RawBSONDocument] = []
    for doc in cursor:
        batch.append(doc)
        if len(batch) >= WRITE_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


#: Run fields, not content: a document that differs only in these is left as it is.
META_FIELDS = ("_id", "_updated_at", "_run_id")
#: Up to this many documents, a collection is compared with the new result in the client (unchanged
#: documents are not rewritten); a bigger one is rewritten whole by a server-side ``$merge``.
COMPARE_LIMIT = 200_000


def _content(doc: RawBSONDocument) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in META_FIELDS}


def _existing(
    db: Database, model: ModelNode, query: dict[str, Any] | None = None
) -> dict[tuple[Any, ...], tuple[Any, dict[str, Any]]]:
    """Key -> (``_id``, content) of the documents of the model's collection matching ``query`` (all: None)."""
    keys = list(model.spec.unique_key or [])
    return {
        tuple(_hashable(doc.get(k)) for k in keys): (doc["_id"], _content(doc))
        for doc in db.get_collection(model.collection, codec_options=_RAW).find(query or {})
    }


def merge_changed(
    db: Database, source: str, pipeline: list[dict[str, Any]], model: ModelNode, query: dict[str, Any]
) -> list[dict[str, Any]]:
    """An incremental batch: write the pipeline's result on ``unique_key`` where it differs from the stored
    documents matching ``query`` (the batch's outputs; an index-friendly filter), leaving identical documents
    untouched and deleting nothing. The client compares: a server-side ``$merge`` that keeps identical
    documents cost ~1 ms per document on SecantusDB. The ``unique_key`` values of the documents written (new
    or changed)."""
    return _write(db, source, pipeline, model, _existing(db, model, query))[1]


def _write(
    db: Database,
    source: str,
    pipeline: list[dict[str, Any]],
    model: ModelNode,
    existing: dict[tuple[Any, ...], tuple[Any, dict[str, Any]]] | None,
) -> tuple[int, list[dict[str, Any]], datetime | None]:
    """Stream the pipeline's result into the model's collection: inserts into an empty one (``existing`` None);
    else replace-or-insert by key, skipping documents whose content equals the stored one, and the keys left
    in ``existing`` are those to delete. The number of documents in the result, the keys of those written
    over stored ones (new or changed; none in an empty collection), and the result's newest ``event_time``."""
    keys = list(model.spec.unique_key or [])
    event_time = model.spec.event_time
    newest: datetime | None = None
    target = db.get_collection(model.collection, codec_options=_RAW)
    seen: set[tuple[Any, ...]] = set()
    duplicates: list[tuple[str, ...]] = []
    count = 0
    written: list[dict[str, Any]] = []
    cursor = db.get_collection(source, codec_options=_RAW).aggregate(pipeline, allowDiskUse=True)
    try:
        for batch in _batches(cursor):
            ops: list[Any] = []
            for doc in batch:
                values = [doc.get(k) for k in keys]
                key = tuple(_hashable(v) for v in values)
                if keys and key in seen:
                    duplicates.append(tuple(repr(v) for v in key))  # shown as verify_keys shows them
                    continue
                seen.add(key)
                count += 1
                when = doc.get(event_time) if event_time else None
                if isinstance(when, datetime) and (newest is None or when > newest):
                    newest = when
                if existing is None or not keys:
                    ops.append(InsertOne(doc))
                    continue
                old = existing.pop(key, None)
                if old is None or old[1] != _content(doc):
                    key_values = dict(zip(keys, values, strict=True))
                    ops.append(ReplaceOne(key_values, doc, upsert=True))
                    written.append(key_values)
            if ops:
                target.bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        raise TransformError(f"{model.path}: model '{model.name}': writing its result failed: "
                             f"{exc.details.get('writeErrors', [{}])[0].get('errmsg', exc)}") from None  # fmt: skip
    except OperationFailure as exc:
        raise _server_error(model, exc) from None
    finally:
        cursor.close()
    if duplicates:
        raise _duplicate_error(model, duplicates)
    return count, written, newest


def _merge(db: Database, source: str, pipeline: list[dict[str, Any]], model: ModelNode, run_id: str) -> None:
    """``$merge`` the pipeline's result into the model's collection on the server."""
    try:
        db[source].aggregate(pipeline + [_replace_stage(model, run_id)], allowDiskUse=True)
    except OperationFailure as exc:
        raise _server_error(model, exc) from None


def _index_first_build(db: Database, model: ModelNode) -> None:
    """Every index of a first build, after its inserts. The client wrote each key once: a key the server still
    finds twice (values Python tells apart and BSON does not, such as two NaN) fails the model."""
    try:
        ensure_indexes(db, model)
    except OperationFailure as exc:
        if exc.code not in DUPLICATE_KEY_CODES and "duplicate" not in str(exc).lower():
            raise _server_error(model, exc) from None
        raise TransformError(f"{model.path}: model '{model.name}': unique_key {list(model.spec.unique_key or [])} "
                             f"is not unique ({exc.details.get('errmsg', exc) if exc.details else exc}); not "
                             "recorded as built. Fix the pipeline's grouping or the key") from None  # fmt: skip


@dataclass
class Rebuilt:
    """What a rebuild did."""

    #: Documents in the result.
    rows: int
    #: ``unique_key`` values of the documents it wrote over stored ones or deleted; None when it wrote the
    #: collection whole (a first build, or a server-side ``$merge`` of a large collection).
    changed_keys: list[dict[str, Any]] | None
    #: The newest ``event_time`` (a date) of the rebuilt collection, when the documents went through the
    #: client (None after a server-side ``$merge``, or without ``event_time``).
    newest_event_time: datetime | None = None


def rebuild(
    db: Database,
    source: str,
    pipeline: list[dict[str, Any]],
    model: ModelNode,
    run_id: str,
    stamp: datetime | None = None,
) -> Rebuilt:
    """Replace the model's documents by the result of ``pipeline`` on ``source`` (its documents stamped with
    ``run_id`` and ``_updated_at`` ``stamp``), crash-safe as the module says."""
    info = next(db.list_collections(filter={"name": model.collection}), None)
    existed = info is not None
    view = existed and info.get("type") == "view"  # type: ignore[union-attr]
    size = 0 if not existed or view else db[model.collection].estimated_document_count()
    prepare_target(db, model, indexes=size > 0)  # a first build's inserts: no index yet
    compare = 0 < size <= COMPARE_LIMIT and bool(model.spec.unique_key)
    existing = _existing(db, model) if compare else None
    point = f"{model.name}:full"
    failpoint(f"{point}:start")
    changed: list[dict[str, Any]] | None = None
    newest: datetime | None = None
    try:
        if size == 0 or compare:
            rows, written, newest = _write(db, source, pipeline, model, existing)
            changed = written if compare else None
            if size == 0:
                _index_first_build(db, model)
        else:
            _merge(db, source, pipeline, model, run_id)
    except TransformError:
        if not existed:  # a first build that failed leaves no (empty) collection behind
            with contextlib.suppress(PyMongoError):
                db.drop_collection(model.collection)
        raise
    failpoint(f"{point}:merged")
    if size and not compare:  # the client checked the keys of what it wrote on the way
        rows = verify_keys(db, model, {"_run_id": run_id})
    failpoint(f"{point}:verified")
    if existing:  # keys the result no longer has
        stale_ids = [doc_id for doc_id, _ in existing.values()]
        changed = (changed or []) + [{k: content.get(k) for k in model.spec.unique_key or []}
                                     for _, content in existing.values()]  # fmt: skip
        for start in range(0, len(stale_ids), WRITE_BATCH):
            db[model.collection].delete_many({"_id": {"$in": stale_ids[start : start + WRITE_BATCH]}})
        if stamp is not None:  # a deletion moves the collection's newest _updated_at (children track it)
            db[model.collection].update_one({}, {"$set": {"_updated_at": stamp, "_run_id": run_id}})
    elif size and not compare:
        db[model.collection].delete_many({"_run_id": {"$ne": run_id}})
    failpoint(f"{point}:deleted")
    if compare:
        stale = db[model.collection].count_documents({}) - rows
    else:
        stale = db[model.collection].count_documents({"_run_id": {"$ne": run_id}}) if size else 0
    if stale:
        raise TransformError(f"{model.path}: model '{model.name}': {stale} documents of an earlier run remain after "
                             "the rebuild; not recorded as built. Rerun elt transform")  # fmt: skip
    return Rebuilt(rows, changed, newest)

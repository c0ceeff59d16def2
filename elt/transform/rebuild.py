"""The crash-safe rebuild of a whole model in place (a ``table``, or an ``incremental`` model built in full).

No ``renameCollection`` (the embedded SecantusDB moves documents one by one in a rename, so a crash there
duplicated keys). Instead, in this order:

1. the model's collection gets its unique index on ``unique_key`` (a view of that name is dropped first);
2. the pipeline's result, every document stamped with this run's ``_run_id``, is written on ``unique_key``.
   Into an empty collection (a first build) it is streamed through the client and inserted in bulk, and the
   other indexes are built afterwards; on SecantusDB that costs ~0.1 ms per document where a ``$merge`` cost
   ~0.7 ms. Into a collection with documents it is ``$merge``d on the server: an existing key gets this run's
   document (its ``_id`` kept), a new key is inserted (a bulk replace from the client measured no cheaper);
3. the keys written are read back: a key the result holds twice (seen by the client, or flagged by the
   ``$merge``) fails the model;
4. the documents of earlier runs (keys the result no longer has) are deleted, and a count checks none is left.

A crash at any instant leaves each key with either its old or its new document (never two: the unique index
exists before the first write), and the model's state unrecorded (the caller records it after this returns),
so the next run rebuilds it and deletes what the crash left.
``elt.failpoint`` names the points between the steps (``<model>:full:start|merged|verified|deleted``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING
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


def ensure_indexes(
    db: Database, model: ModelNode, collection: str | None = None, unique_only: bool = False
) -> None:
    """Indexes of a model's output: unique key, partition/event_time, declared ones and ``_updated_at``
    (only the unique one with ``unique_only``).

    A key pattern is created once (MongoDB refuses a second index on the same keys with other options).
    """
    coll = db[collection or model.collection]
    spec = model.spec
    created: set[tuple[str, ...]] = set()
    if spec.unique_key:
        coll.create_index([(k, ASCENDING) for k in spec.unique_key], unique=True, name="unique_key")
        created.add(tuple(spec.unique_key))
    if unique_only:
        return
    wanted = [list(index) for index in spec.indexes]
    if spec.partition_by:
        wanted.append(spec.partition_by + ([spec.event_time] if spec.event_time else []))
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


def prepare_target(db: Database, model: ModelNode, unique_only: bool = False) -> None:
    """The model's collection with its indexes (``unique_only``: the unique one), ready for writes; a view of
    that name is dropped first.

    A collection whose keys are already duplicated (left by an older, non-atomic swap) cannot get its unique
    index: it is emptied and rebuilt, with a warning.
    """
    info = next(db.list_collections(filter={"name": model.collection}), None)
    if info and info.get("type") == "view":
        db.drop_collection(model.collection)
    try:
        ensure_indexes(db, model, unique_only=unique_only)
    except OperationFailure as exc:
        if exc.code not in (11000, 11001, 12582) and "duplicate" not in str(exc).lower():
            raise
        log.warning("%s: duplicate unique_key values in the existing collection (an earlier crash?): "
                    "rebuilding it from empty", model.name)  # fmt: skip
        db[model.collection].delete_many({})
        ensure_indexes(db, model, unique_only=unique_only)


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


def _insert(db: Database, source: str, pipeline: list[dict[str, Any]], model: ModelNode) -> int:
    """Stream the pipeline's result into the model's (empty) collection; the number of documents written."""
    keys = list(model.spec.unique_key or [])
    target = db.get_collection(model.collection, codec_options=_RAW)
    seen: set[tuple[Any, ...]] = set()
    duplicates: list[tuple[str, ...]] = []
    written = 0
    cursor = db.get_collection(source, codec_options=_RAW).aggregate(pipeline, allowDiskUse=True)
    try:
        for batch in _batches(cursor):
            docs = []
            for doc in batch:
                key = tuple(_hashable(doc.get(k)) for k in keys)
                if keys and key in seen:
                    duplicates.append(tuple(repr(v) for v in key))  # shown as verify_keys shows them
                    continue
                seen.add(key)
                docs.append(doc)
            if docs:
                target.insert_many(docs, ordered=False)
                written += len(docs)
    except BulkWriteError as exc:
        raise TransformError(f"{model.path}: model '{model.name}': writing its result failed: "
                             f"{exc.details.get('writeErrors', [{}])[0].get('errmsg', exc)}") from None  # fmt: skip
    except OperationFailure as exc:
        raise _server_error(model, exc) from None
    finally:
        cursor.close()
    if duplicates:
        raise _duplicate_error(model, duplicates)
    return written


def _merge(db: Database, source: str, pipeline: list[dict[str, Any]], model: ModelNode, run_id: str) -> None:
    """``$merge`` the pipeline's result into the model's collection on the server."""
    try:
        db[source].aggregate(pipeline + [_replace_stage(model, run_id)], allowDiskUse=True)
    except OperationFailure as exc:
        raise _server_error(model, exc) from None


def rebuild(db: Database, source: str, pipeline: list[dict[str, Any]], model: ModelNode, run_id: str) -> int:
    """Replace the model's documents by the result of ``pipeline`` on ``source`` (its documents stamped with
    ``run_id``), crash-safe as the module says; the number of documents written."""
    info = next(db.list_collections(filter={"name": model.collection}), None)
    existed = info is not None
    empty = (
        info is None or info.get("type") == "view" or db[model.collection].find_one({}, {"_id": 1}) is None
    )
    prepare_target(db, model, unique_only=empty)
    point = f"{model.name}:full"
    failpoint(f"{point}:start")
    try:
        if empty:
            rows = _insert(db, source, pipeline, model)
            ensure_indexes(db, model)
        else:
            _merge(db, source, pipeline, model, run_id)
    except TransformError:
        if not existed:  # a first build that failed leaves no (empty) collection behind
            with contextlib.suppress(PyMongoError):
                db.drop_collection(model.collection)
        raise
    failpoint(f"{point}:merged")
    if not empty:  # the inserts were checked on the way (and an empty collection has no earlier documents)
        rows = verify_keys(db, model, {"_run_id": run_id})
    failpoint(f"{point}:verified")
    if not empty:
        db[model.collection].delete_many({"_run_id": {"$ne": run_id}})
    failpoint(f"{point}:deleted")
    stale = 0 if empty else db[model.collection].count_documents({"_run_id": {"$ne": run_id}})
    if stale:
        raise TransformError(f"{model.path}: model '{model.name}': {stale} documents of an earlier run remain after "
                             "the rebuild; not recorded as built. Rerun elt transform")  # fmt: skip
    return rows

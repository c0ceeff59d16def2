"""The store's client writes with majority write concern and retryable writes, on the real wire server of the
tests (the embedded SecantusDB, or MONGO_URI): the server accepts them on every kind of write the project does,
and a URI option overrides either."""

from __future__ import annotations

import uuid
from typing import Any

from pymongo import ReturnDocument, UpdateOne, monitoring

from elt.store import WRITE_OPTIONS, connect


class _Commands(monitoring.CommandListener):
    """Every write command sent, with its write concern and whether it carried a retry transaction number."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("insert", "update", "delete", "findAndModify", "aggregate"):
            self.sent.append({"name": event.command_name, "writeConcern": event.command.get("writeConcern"),
                              "txnNumber": "txnNumber" in event.command})  # fmt: skip

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _with_listener(uri: str, listener: _Commands) -> Any:
    import elt.store

    original = elt.store.MongoClient

    def client(*args: Any, **kwargs: Any) -> Any:
        return original(*args, event_listeners=[listener], **kwargs)

    elt.store.MongoClient = client  # type: ignore[misc]
    try:
        return connect(uri)
    finally:
        elt.store.MongoClient = original  # type: ignore[misc]


def test_every_kind_of_write_goes_with_majority_write_concern_and_is_accepted(mongo_server_uri: str) -> None:
    assert WRITE_OPTIONS == {"w": "majority", "retryWrites": True}
    listener = _Commands()
    client = _with_listener(mongo_server_uri, listener)
    name = f"elt_test_wc_{uuid.uuid4().hex[:8]}"
    try:
        assert client.write_concern.document == {"w": "majority"}
        assert client.options.retry_writes is True
        coll = client[name]["docs"]
        coll.insert_one({"k": 1, "v": 0})
        coll.insert_many([{"k": 2, "v": 0}, {"k": 3, "v": 0}])
        coll.update_one({"k": 1}, {"$set": {"v": 1}})
        coll.bulk_write(
            [UpdateOne({"k": 2}, {"$set": {"v": 2}}), UpdateOne({"k": 4}, {"$set": {"v": 4}}, upsert=True)]
        )
        taken = coll.find_one_and_update({"k": 3}, {"$set": {"v": 3}}, return_document=ReturnDocument.AFTER)
        assert taken is not None and taken["v"] == 3
        coll.aggregate([{"$match": {}}, {"$project": {"_id": 0}}, {"$merge": {"into": "copy", "on": "_id"}}])
        coll.delete_many({"k": 4})
        assert sorted((d["k"], d["v"]) for d in coll.find({}, {"_id": 0})) == [(1, 1), (2, 2), (3, 3)]
        assert client[name]["copy"].count_documents({}) == 4
        writes = [c for c in listener.sent if c["name"] != "aggregate"]
        assert len(writes) == 6 and all(c["writeConcern"] == {"w": "majority"} for c in writes)
        merge = next(c for c in listener.sent if c["name"] == "aggregate")
        assert merge["writeConcern"] == {"w": "majority"}  # $merge writes too
        # retryable writes: sent with a transaction number where the server supports sessions (a replica set,
        # or SecantusDB announcing one), and never a failure where it does not (a standalone mongod)
        retried = {c["txnNumber"] for c in writes if c["name"] in ("insert", "update", "findAndModify")}
        hello = client.admin.command("hello")
        assert retried == (
            {True} if hello.get("setName") and hello.get("logicalSessionTimeoutMinutes") else {False}
        )
    finally:
        client.drop_database(name)
        client.close()


def test_a_uri_option_overrides_the_write_options(mongo_server_uri: str) -> None:
    separator = "&" if "?" in mongo_server_uri else "/?" if mongo_server_uri.count("/") == 2 else "?"
    client = connect(f"{mongo_server_uri}{separator}w=1&retryWrites=false")
    try:
        assert client.write_concern.document == {"w": 1}
        assert client.options.retry_writes is False
    finally:
        client.close()

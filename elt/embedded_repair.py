"""Repair of the embedded store after a kill interrupted the creation of one of its tables.

SecantusDB creates a WiredTiger table lazily, the first time a collection that hashes to it is written (16
document shards). WiredTiger writes a new table's metadata in steps: the table, then its file, then its column
group. A SIGKILL of the server between them leaves a table WiredTiger refuses to open ("cannot be used until all
column groups are created"), and the server then fails at every start. Measured: 2 of 9 trials of the fault
test that kills the server during a first load. Such a table was never written to (a write needs the finished
table), so creating its missing column group on its own file completes it, empty, and loses nothing.
"""

from __future__ import annotations

from pathlib import Path

#: What WiredTiger logs when it meets a table whose creation was interrupted.
INTERRUPTED_CREATE_MESSAGE = "cannot be used until all column groups are created"
#: The journal settings SecantusDB opens its store with: the repair must replay the same journal.
WIREDTIGER_CONFIG = "log=(enabled=true,file_max=10MB,prealloc=false)"


def complete_interrupted_tables(data_dir: Path) -> list[str]:
    """Give every table of the stopped store on ``data_dir`` that lacks its column group one; their names.

    Only tables with WiredTiger's default (unnamed) column group, the only kind SecantusDB creates, are
    touched. Must run while no server has the store open.
    """
    import wiredtiger  # shipped with SecantusDB (the ``embedded`` extra), like the server itself

    connection = wiredtiger.wiredtiger_open(str(data_dir), WIREDTIGER_CONFIG)
    try:
        session = connection.open_session()
        metadata = session.open_cursor("metadata:", None, None)
        entries = dict(metadata)
        metadata.close()
        completed = []
        for key, config in sorted(entries.items()):
            name = key.removeprefix("table:")
            default_group = "colgroups=(" not in config
            if key.startswith("table:") and default_group and f"colgroup:{name}" not in entries:
                session.create(f"colgroup:{name}", f'source="file:{name}.wt"')
                completed.append(name)
        return completed
    finally:
        connection.close()

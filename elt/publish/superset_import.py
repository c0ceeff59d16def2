"""Import an airqino-elt dashboard bundle into Superset; runs with the *Superset* interpreter, not elt's.

``elt dashboard import`` runs ``<superset venv>/bin/python superset_import.py BUNDLE.zip --username admin``.
It does what ``superset import-dashboards`` does, plus two things that command does not:

- datasets and charts are overwritten too (``import-dashboards`` keeps existing charts and datasets as they
  are, so an edited chart in ``config/superset/`` would never reach Superset on a re-import);
- the database URI (with its password) is read from the environment variable ``ELT_SUPERSET_DATABASE_URI``
  and set like ``superset set-database-uri`` does, so it never appears in the bundle or on a command line.

Prints one JSON line: the dashboard id and slug and the chart id of every chart UUID. Exit 1 on failure.
Only Superset's own import commands are used (the same ones its CLI and REST API call).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import uuid
import zipfile

import yaml

#: How ``elt dashboard import`` hands this script the database URI (never on a command line).
DATABASE_URI_ENV = "ELT_SUPERSET_DATABASE_URI"
MODEL_TYPES = {"datasets": "SqlaTable", "charts": "Slice", "dashboards": "Dashboard"}


def _contents_with_type(contents: dict[str, str], model_type: str) -> dict[str, str]:
    metadata = yaml.safe_load(contents["metadata.yaml"])
    metadata["type"] = model_type
    return {**contents, "metadata.yaml": yaml.safe_dump(metadata)}


def main(argv: list[str]) -> int:
    """Import the bundle (overwriting), set the database URI, print the ids; the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--username", default="admin")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from flask import g
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        from superset import db, security_manager
        from superset.commands.chart.importers.v1 import ImportChartsCommand
        from superset.commands.dashboard.importers.v1 import ImportDashboardsCommand
        from superset.commands.dataset.importers.v1 import ImportDatasetsCommand
        from superset.commands.importers.v1.utils import get_contents_from_bundle
        from superset.models.dashboard import Dashboard
        from superset.models.slice import Slice
        from superset.utils.database import get_or_create_db

        user = security_manager.find_user(username=args.username)
        if user is None:
            print(
                f"Superset has no user '{args.username}': create it with `superset fab create-admin`",
                file=sys.stderr,
            )
            return 1
        g.user = user
        with zipfile.ZipFile(args.bundle) as bundle:
            contents = get_contents_from_bundle(bundle)
        commands = (ImportDatasetsCommand, ImportChartsCommand, ImportDashboardsCommand)
        for command, model_type in zip(commands, MODEL_TYPES.values(), strict=True):
            try:
                command(_contents_with_type(contents, model_type), overwrite=True).run()
            except Exception as exc:  # noqa: BLE001 - Superset raises many types; report the validation details
                details = getattr(exc, "normalized_messages", lambda: None)()
                print(
                    f"importing {model_type} failed: {exc} {json.dumps(details) if details else ''}",
                    file=sys.stderr,
                )
                return 1

        database_yaml = next(
            yaml.safe_load(text) for name, text in contents.items() if name.startswith("databases/")
        )
        uri = os.environ.get(DATABASE_URI_ENV)
        if uri:
            get_or_create_db(database_yaml["database_name"], uri, always_create=False)
            db.session.commit()

        dashboard_yaml = next(
            yaml.safe_load(text) for name, text in contents.items() if name.startswith("dashboards/")
        )
        dashboard = db.session.query(Dashboard).filter_by(uuid=uuid.UUID(str(dashboard_yaml["uuid"]))).one()
        chart_uuids = [
            uuid.UUID(str(yaml.safe_load(text)["uuid"]))
            for name, text in contents.items()
            if name.startswith("charts/")
        ]
        charts = {str(s.uuid): s.id for s in db.session.query(Slice).filter(Slice.uuid.in_(chart_uuids))}
        print(json.dumps({"dashboard_id": dashboard.id, "slug": dashboard.slug, "charts": charts,
                          "database_uri_set": bool(uri)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``elt schema``: JSON Schemas of the project files, for editors and validation tools."""

from __future__ import annotations

import json

import click


@click.group()
def schema() -> None:
    """Print the JSON Schema of a project file (config, profiles, models).

    Example: elt schema config > .vscode/elt.schema.json
    """


@schema.command("config")
def schema_config() -> None:
    """JSON Schema of config/elt.yml.

    Example: elt schema config | jq '.properties.stations'
    """
    from elt.config import config_json_schema

    click.echo(json.dumps(config_json_schema(), indent=2))


@schema.command("profiles")
def schema_profiles() -> None:
    """JSON Schema of config/profiles.yml.

    Example: elt schema profiles
    """
    from elt.config import profiles_json_schema

    click.echo(json.dumps(profiles_json_schema(), indent=2))


@schema.command("models")
def schema_models() -> None:
    """JSON Schema of a file in aggregations/ (one model, or a sources: declaration).

    Example: elt schema models > .vscode/aggregations.schema.json
    """
    from elt.models.schema import models_json_schema

    click.echo(json.dumps(models_json_schema(), indent=2))

"""Validates documents against a published JSON Schema with the `jsonschema` package, for the
tests of what meshline generates (OpenSLO, Sloth, ODCS, AsyncAPI, OpenLineage).

Usage: validate.py SCHEMA FILE... : every document of each FILE (a YAML stream or JSON) against
SCHEMA, with every other `*.json` schema under SCHEMA's directory available to `$ref` by its
`$id`. Prints each error (file, document, path, message) and exits 1 if any; otherwise prints
how many documents passed.
"""

import json
import pathlib
import sys

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


def registry_of(directory):
    resources = []
    for path in directory.rglob("*.json"):
        schema = json.loads(path.read_text())
        if isinstance(schema, dict) and "$id" in schema:
            resource = Resource.from_contents(schema, default_specification=DRAFT202012)
            resources.append((schema["$id"], resource))
    return Registry().with_resources(resources)


def documents(path):
    text = path.read_text()
    if path.suffix == ".json":
        return [json.loads(text)]
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def main():
    schema_path = pathlib.Path(sys.argv[1])
    schema = json.loads(schema_path.read_text())
    registry = registry_of(schema_path.parent)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, registry=registry)
    failures, passed = 0, 0
    for name in sys.argv[2:]:
        for index, doc in enumerate(documents(pathlib.Path(name))):
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
            for error in errors:
                failures += 1
                where = "/".join(str(p) for p in error.absolute_path)
                print(f"{name} document {index} at /{where}: {error.message}")
            passed += not errors
    if failures:
        sys.exit(1)
    print(f"{passed} documents valid")


if __name__ == "__main__":
    main()

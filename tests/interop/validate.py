"""Validates documents against a published JSON Schema with the `jsonschema` package, for the
tests of what meshline generates (OpenSLO, Sloth, ODCS, AsyncAPI, OpenLineage).

Usage: validate.py [--facets] SCHEMA FILE... : every document of each FILE (a YAML stream, JSON,
or JSON lines with `.jsonl`) against SCHEMA, with every other `*.json` schema under SCHEMA's
directory available to `$ref` by its `$id`. With `--facets` (OpenLineage), every facet of a
document (an object with `_schemaURL`) is also checked against the schema its `_schemaURL` names,
which must be among them. Prints each error (file, document, path, message) and exits 1 if any;
otherwise prints how many documents (and facets) passed.
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
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def facets(value, path=()):
    """Every (path, facet) under value: objects that name their schema in `_schemaURL`."""
    if isinstance(value, dict):
        if "_schemaURL" in value:
            yield path, value
        for key, inner in value.items():
            yield from facets(inner, path + (key,))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from facets(inner, path + (index,))


def main():
    args = sys.argv[1:]
    check_facets = args[0] == "--facets"
    if check_facets:
        args = args[1:]
    sys.argv[1:] = args
    schema_path = pathlib.Path(sys.argv[1])
    schema = json.loads(schema_path.read_text())
    registry = registry_of(schema_path.parent)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, registry=registry)
    failures, passed, facets_passed = 0, 0, 0
    for name in sys.argv[2:]:
        for index, doc in enumerate(documents(pathlib.Path(name))):
            errors = [("", e) for e in validator.iter_errors(doc)]
            if check_facets:
                for path, facet in facets(doc):
                    facet_validator = validator_class({"$ref": facet["_schemaURL"]}, registry=registry)
                    prefix = "/".join(str(p) for p in path) + "/"
                    found = list(facet_validator.iter_errors(facet))
                    errors.extend((prefix, e) for e in found)
                    facets_passed += not found
            for prefix, error in errors:
                failures += 1
                where = prefix + "/".join(str(p) for p in error.absolute_path)
                print(f"{name} document {index} at /{where}: {error.message}")
            passed += not errors
    if failures:
        sys.exit(1)
    print(f"{passed} documents valid" + (f", {facets_passed} facets valid" if check_facets else ""))


if __name__ == "__main__":
    main()

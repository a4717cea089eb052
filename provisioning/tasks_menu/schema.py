"""The input schema of a task: a small subset of JSON Schema, checked when the provider
saves it, and the validation of a run's inputs against it.

Inputs are checked on the server and fail closed: keys outside the schema are refused
(``additionalProperties`` is always false), every message names ``inputs.<key>`` and
none echoes the value sent.
"""

import copy
import re
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker

from base.errors import Invalid

__all__ = ["CHOICES", "RESOURCES", "apply_defaults", "check_schema", "input_errors",
           "narrows"]

RESOURCES = ("vm", "network", "snapshot")
CHOICES = ("checkpoint-days", "plan-sizes")
_TYPES = ("string", "integer", "number", "boolean")

_PROPERTY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {
        "type": {"enum": list(_TYPES)},
        "title": {"type": "string", "maxLength": 100},
        "description": {"type": "string", "maxLength": 500},
        "enum": {"type": "array", "minItems": 1, "maxItems": 500},
        "minimum": {"type": "number"},
        "maximum": {"type": "number"},
        "minLength": {"type": "integer", "minimum": 0},
        "maxLength": {"type": "integer", "minimum": 0, "maximum": 4096},
        "pattern": {"type": "string", "maxLength": 500},
        "format": {"const": "date"},
        "default": {},
        "x-resource": {"enum": list(RESOURCES)},
        "x-choices": {"enum": list(CHOICES)},
    },
}
# The schema of input schemas: anything outside it is refused when a task is saved.
META_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "properties", "additionalProperties"],
    "properties": {
        "type": {"const": "object"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "properties": {
            "type": "object",
            "maxProperties": 20,
            "propertyNames": {"pattern": "^[a-z][a-z0-9_]{0,39}$"},
            "additionalProperties": _PROPERTY,
        },
        "required": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "additionalProperties": {"const": False},
    },
}
_META = Draft202012Validator(META_SCHEMA)


def _where(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return f"input_schema.{path}" if path else "input_schema"


def check_schema(schema: Any) -> None:
    """Refuse a schema outside the subset, or one that contradicts itself (400)."""
    errors: dict[str, list[str]] = {}
    for error in _META.iter_errors(schema):
        if error.validator == "additionalProperties":
            message = "Not a keyword of task input schemas: use type, enum, minimum, " \
                      "maximum, minLength, maxLength, pattern, format (date), default, " \
                      "x-resource, x-choices."
        else:
            message = error.message
        errors.setdefault(_where(error), []).append(message)
    if not errors:
        properties = schema["properties"]
        for name in schema.get("required", []):
            if name not in properties:
                errors.setdefault("input_schema.required", []).append(
                    f"'{name}' is not a property.")
        for name, prop in properties.items():
            where = f"input_schema.properties.{name}"
            if "pattern" in prop:
                try:
                    re.compile(prop["pattern"])
                except re.error as exc:
                    errors.setdefault(where, []).append(f"The pattern is not valid: {exc}.")
                    continue
            if ("x-resource" in prop or "format" in prop or "pattern" in prop
                    or "minLength" in prop or "maxLength" in prop) and prop["type"] != "string":
                errors.setdefault(where, []).append("This keyword needs type string.")
            if ("minimum" in prop or "maximum" in prop) and prop["type"] not in (
                    "integer", "number"):
                errors.setdefault(where, []).append("minimum and maximum need a number type.")
            if "default" in prop and not Draft202012Validator(
                    prop, format_checker=FormatChecker()).is_valid(prop["default"]):
                errors.setdefault(where, []).append("The default does not fit the property.")
    if not errors:
        try:
            Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            errors["input_schema"] = [exc.message]
    if errors:
        raise Invalid("The input schema is not valid.", errors=errors)


def narrows(schema: dict, widest: dict) -> dict[str, list[str]]:
    """What makes ``schema`` (a published task's) wider than its runbook's ``widest``."""
    errors: dict[str, list[str]] = {}
    wide = widest["properties"]
    for name, prop in schema["properties"].items():
        where = f"input_schema.properties.{name}"
        if name not in wide:
            errors[where] = ["Not an input of the runbook."]
            continue
        for keyword in ("type", "x-resource", "x-choices", "format"):
            if wide[name].get(keyword) != prop.get(keyword):
                errors.setdefault(where, []).append(
                    f"'{keyword}' must be as the runbook has it ({wide[name].get(keyword)}).")
        if "pattern" in wide[name] and prop.get("pattern") != wide[name]["pattern"]:
            errors.setdefault(where, []).append("The runbook's pattern cannot be replaced.")
    for name in widest.get("required", []):
        prop = schema["properties"].get(name)
        if prop is None or (name not in schema.get("required", []) and "default" not in prop):
            errors.setdefault("input_schema.required", []).append(
                f"'{name}' is needed by the runbook: require it or give it a default.")
    return errors


def apply_defaults(schema: dict, inputs: dict) -> dict:
    values = dict(inputs)
    for name, prop in schema["properties"].items():
        if name not in values and "default" in prop:
            values[name] = copy.deepcopy(prop["default"])
    return values


def _message(error: jsonschema.ValidationError, prop: dict) -> str:
    """A message that says what is expected, without repeating what was sent."""
    match error.validator:
        case "type":
            return f"Must be of type {prop.get('type')}."
        case "enum":
            return "Not one of the choices offered."
        case "minimum":
            return f"Must be at least {prop['minimum']}."
        case "maximum":
            return f"Must be at most {prop['maximum']}."
        case "minLength":
            return f"Must be at least {prop['minLength']} characters long."
        case "maxLength":
            return f"Must be at most {prop['maxLength']} characters long."
        case "pattern":
            return "Does not have the expected form."
        case "format":
            return "Must be a date (YYYY-MM-DD)."
    return "Not valid."


def input_errors(schema: dict, inputs: Any) -> dict[str, list[str]]:
    """``inputs.<key>`` -> messages; empty when the inputs fit ``schema``."""
    if not isinstance(inputs, dict):
        return {"inputs": ["Must be an object of the task's inputs."]}
    properties = schema["properties"]
    errors: dict[str, list[str]] = {}
    for key in inputs:
        if key not in properties:
            errors[f"inputs.{key}"] = ["Not an input of this task."]
    for name in schema.get("required", []):
        if name not in inputs:
            errors[f"inputs.{name}"] = ["This input is required."]
    checker = FormatChecker()
    for name, prop in properties.items():
        if name not in inputs or f"inputs.{name}" in errors:
            continue
        validator = Draft202012Validator(
            {k: v for k, v in prop.items() if not k.startswith("x-")}, format_checker=checker)
        messages = [_message(e, prop) for e in validator.iter_errors(inputs[name])]
        if isinstance(inputs[name], bool) and prop["type"] in ("integer", "number"):
            messages = [f"Must be of type {prop['type']}."]
        if messages:
            errors[f"inputs.{name}"] = messages
    return errors

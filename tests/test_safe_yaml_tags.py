"""Explicit tags in untrusted YAML: every misfit is a typed error, never a traceback (issue 16 §5).

PyYAML's SafeConstructor fails with whatever its code hits on a value its tag does not fit
(yaml/constructor.py: construct_yaml_timestamp calls `.groupdict()` on a failed match,
construct_yaml_bool indexes `bool_values`); types JSON has no form for are refused."""

from __future__ import annotations

import datetime

import pytest

from scoutflo.charts import safe_yaml

MISFITS = [
    "version: !!timestamp x",
    "version: !!bool maybe",
    "version: !!map [1]",
    "version: !!int zz",
    "version: !!float zz",
    "version: !!str [1]",
    "version: !!seq {a: 1}",
    "version: !!python/name:os.system",
]
REFUSED_TYPES = [
    "version: !!set {1}",
    "version: !!omap [{a: 1}]",
    "version: !!pairs [{a: 1}]",
    "version: !!binary aGk=",
]


@pytest.mark.parametrize("doc", MISFITS + REFUSED_TYPES)
def test_a_tag_the_value_does_not_fit_is_a_typed_error(doc: str) -> None:
    with pytest.raises(safe_yaml.UntrustedYamlError, match=r"^Chart\.yaml: not valid YAML: "):
        safe_yaml.load(doc, "Chart.yaml")
    with pytest.raises(safe_yaml.UntrustedYamlError, match=r"^Chart\.yaml: not valid YAML: "):
        safe_yaml.load_at(doc.encode(), "Chart.yaml", ("version",))


@pytest.mark.parametrize("doc", REFUSED_TYPES)
def test_types_json_cannot_hold_are_named(doc: str) -> None:
    with pytest.raises(safe_yaml.UntrustedYamlError, match="is not accepted"):
        safe_yaml.load(doc, "Chart.yaml")


def test_tags_that_fit_still_load() -> None:
    doc = "a: !!timestamp 2020-01-01\nb: !!int '7'\nc: !!str 1\nd: !!map {x: 1}\ne: !!bool yes\n"
    assert safe_yaml.load(doc, "values.yaml") == {
        "a": datetime.date(2020, 1, 1),
        "b": 7,
        "c": "1",
        "d": {"x": 1},
        "e": True,
    }

"""A string that reads as another JSON scalar ("1", "false", "null") is shown quoted in the
approval text. Shown bare, `enabled: "false"` (truthy in a Helm template: a non-empty string)
read as `false`: an app whose value differs from another's only in that type was folded as
"name replaced" with no "values differ", and an update from false to "false" read
"false → false". The JSON form always had the difference."""

from __future__ import annotations

import re

from automation.changeset import ChangeSet, PropertyChange, ResourceChange, changeset_from_events
from tests import approval_events as ae


def test_apps_differing_only_in_a_values_type_are_not_shown_as_the_same() -> None:
    apps = [
        {"name": "svc00", "chart": "webapp", "values": {"replicaCount": 1}},
        {"name": "svc01", "chart": "webapp", "values": {"replicaCount": "1"}},
    ]
    text = changeset_from_events(ae.as_engine_events(ae.diff_events(None, ae.record(apps)))).to_text()
    folded = re.search(r"svc01 \(1 apps\): as svc00, name replaced", text)
    assert not folded or '.replicaCount\n      svc00 = 1\n      svc01 = "1"' in text, text


def test_an_update_from_a_boolean_to_its_string_is_visible() -> None:
    change = ResourceChange(
        app="svc00",
        type="kubernetes:argoproj.io/v1alpha1:Application",
        name="svc00-application",
        urn="urn:x",
        op="update",
        properties=(PropertyChange("spec.source.helm.valuesObject.enabled", "update", False, "false"),),
        custom=True,
    )
    text = ChangeSet(stack="s", resources=(change,)).to_text()
    assert 'spec.source.helm.valuesObject.enabled: false → "false"' in text, text


def test_a_string_that_reads_as_a_json_string_or_empty_container_is_not_shown_as_one() -> None:
    """The string `"1"` (quotes included) showed as `"1"`, as the string 1 does: an update from
    one to the other read `"1" → "1"`; the string `[]` showed as the empty list does."""
    changes = [
        ("spec.source.helm.valuesObject.a", "1", '"1"', '"1" → "\\"1\\""'),
        ("spec.source.helm.valuesObject.b", [], "[]", '[] → "[]"'),
        ("spec.source.helm.valuesObject.c", {}, "{}", '{} → "{}"'),
    ]
    for path, old, new, shown in changes:
        change = ResourceChange(
            app="svc00",
            type="kubernetes:argoproj.io/v1alpha1:Application",
            name="svc00-application",
            urn="urn:x",
            op="update",
            properties=(PropertyChange(path, "update", old, new),),
            custom=True,
        )
        text = ChangeSet(stack="s", resources=(change,)).to_text()
        assert f"{path}: {shown}" in text, text

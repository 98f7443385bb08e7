"""The approval text a person reads (issue 17 §3), on events made from the real program run under
Pulumi's mock engine (tests/approval_events.py): bounded for 30 apps, every app named and every
change reachable, folding deterministic and never claimed where apps differ in more than values."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest
from pulumi.automation import EngineEvent

from automation.changeset import ChangeSet, changeset_from_events
from tests import approval_events as ae


@pytest.fixture(scope="module")
def thirty() -> tuple[list[EngineEvent], ChangeSet]:
    events = ae.first_deploy(30)
    return events, changeset_from_events(events)


def _fold_line(text: str) -> tuple[list[str], str]:
    """The apps of the one fold line and the app they are shown as."""
    joined = " ".join(line.strip() for line in text.split("\n"))
    found = re.search(r"((?:svc\d\d, )*svc\d\d) \(\d+ apps\): as (svc\d\d), name replaced", joined)
    assert found, "no fold line"
    return found.group(1).split(", "), found.group(2)


def test_a_30_app_first_deploy_is_at_most_300_lines_with_every_app_named(thirty: Any) -> None:
    _, changes = thirty
    text = changes.to_text()
    assert len(text.split("\n")) <= 300
    for i in range(30):
        assert re.search(rf"\bsvc{i:02d}\b", text), f"svc{i:02d} is not named"
    folded, rep = _fold_line(text)
    assert rep == "svc00" and folded == [f"svc{i:02d}" for i in range(1, 30)]
    # The values the apps differ in, each app's own.
    head = "values differ (3 values) in <app>-application: spec.source.helm.valuesObject.replicaCount"
    assert f"    {head}\n      svc00, svc03, svc06, svc09, svc12, svc15, svc18, svc21, svc24, svc27 = 1\n" in text
    assert "      svc02, svc05, svc08, svc11, svc14, svc17, svc20, svc23, svc26, svc29 = 3" in text


def test_every_changed_resource_is_reachable(thirty: Any) -> None:
    # Shown by name, or (a folded app's) as the representative's resource with the name replaced.
    _, changes = thirty
    text = changes.to_text()
    folded, rep = _fold_line(text)
    listed = [r for r in changes.resources if r.listed]
    assert len(listed) == 250
    for r in listed:
        name = re.sub(rf"(?<![A-Za-z0-9]){r.app}(?![A-Za-z0-9])", rep, r.name) if r.app in folded else r.name
        assert f"{r.type}  {name}" in text, r.urn
    # And the JSON form keeps every resource of every app, whole.
    apps = changes.to_json()["apps"]
    assert {f"svc{i:02d}" for i in range(30)} <= set(apps)
    commit = next(r for r in apps["svc17"] if r["name"] == "svc17-initial")
    readme = next(p for p in commit["properties"] if p["path"] == 'files["README.md"]')
    assert "svc17" in readme["new"] and len(readme["new"]) > 1000


def test_committed_files_are_path_size_and_hash(thirty: Any) -> None:
    _, changes = thirty
    text = changes.to_text()
    commit = next(r for r in changes.resources if r.name == "svc00-initial")
    readme = next(p.new for p in commit.properties if p.path == 'files["README.md"]')
    size = len(readme.encode())
    assert re.search(rf'files\["README.md"\]: {size} bytes sha256:[0-9a-f]{{12}}\n', text)
    assert readme.split("\n")[0] not in text, "a file's content is in the JSON, not the text"


def test_folding_is_deterministic(thirty: Any) -> None:
    events, changes = thirty
    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    assert changeset_from_events(shuffled).to_text() == changes.to_text()


def test_a_one_field_change_is_the_field() -> None:
    text = changeset_from_events(ae.one_field_change(3)).to_text()
    assert "spec.source.helm.valuesObject.replicaCount: 1 → 7" in text
    assert "svc00: 1 to update" in text
    assert len(text.split("\n")) <= 10


def test_an_app_with_more_than_other_values_is_not_folded() -> None:
    apps = ae.apps(3)
    apps[2] = {**apps[2], "values": {"replicaCount": 1, "image": {"tag": "v2"}}}
    text = changeset_from_events(ae.as_engine_events(ae.diff_events(None, ae.record(apps)))).to_text()
    assert "svc01 (1 apps): as svc00, name replaced" in text
    assert "\nsvc02: 8 to create" in text, "shown in full: it has a value the others do not"
    assert "spec.source.helm.valuesObject.image.tag: v2" in text


def test_an_app_whose_text_holds_the_placeholder_is_not_folded() -> None:
    # The placeholder stands for the name while apps are compared: an app holding it literally
    # could otherwise pass for another with the name replaced.
    apps = ae.apps(2)
    apps[1] = {**apps[1], "values": {"replicaCount": "\ue000"}}
    text = changeset_from_events(ae.as_engine_events(ae.diff_events(None, ae.record(apps)))).to_text()
    assert "as svc00" not in text and "\nsvc01: 8 to create" in text


def _removal_events() -> list[EngineEvent]:
    return ae.as_engine_events(
        ae.diff_events(ae.record(ae.apps(2), preview=False), ae.record(ae.apps(1), preview=False))
    )


def test_deletes_come_first_and_say_what_they_keep() -> None:
    text = changeset_from_events(_removal_events()).to_text()
    head, _, rest = text.partition("\nreplaced and deleted (first; what each keeps is said):\n")
    first = rest.split("\n\n")[0]
    assert "- svc01: aws:ecr/repository:Repository  svc01-ecr  (kept: retainOnDelete" in first
    assert "svc01-repo  (kept: the repository is archived on GitHub, not deleted" in first
    assert "- svc01: kubernetes:argoproj.io/v1alpha1:Application  svc01-application\n" in first + "\n"
    assert head.startswith("stack ") and "total:" in head


def _step(op: str, old: dict[str, Any], new: dict[str, Any], **extra: Any) -> EngineEvent:
    urn = "urn:pulumi:acme::scoutflo::scoutflo:index:RegistryAccess$kubernetes:core/v1:Secret::registry-access-secret"
    kind = "kubernetes:core/v1:Secret"

    def state(inputs: dict[str, Any], **options: Any) -> dict[str, Any]:
        return {"type": kind, "urn": urn, "parent": "", "custom": True, "inputs": inputs, **options}

    meta = {"op": op, "urn": urn, "type": kind, "old": state(old, **extra), "new": state(new)}
    meta["detailedDiff"] = {"stringData.password": {"diffKind": "update", "inputDiff": True}}
    return EngineEvent.from_json({"resourcePreEvent": {"metadata": meta}})


def test_a_change_under_a_secret_is_said_to_have_changed_never_null() -> None:
    # The event log masks secrets as "[secret]" (what render's mask does, and the SDK's secret
    # marker object both read as it); the detailed diff names a path inside it.
    sig = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "x"}
    for old, new in (
        ({"stringData": "[secret]"}, {"stringData": "[secret]"}),
        ({"stringData": sig}, {"stringData": sig}),
    ):
        text = changeset_from_events([_step("update", old, new)]).to_text()
        assert "stringData.password: [secret] (changed)" in text
        assert "null" not in text


def test_a_protected_replace_is_kept_and_first() -> None:
    old, new = {"stringData": "[secret]"}, {"stringData": "[secret]", "type": "kubernetes.io/tls"}
    text = changeset_from_events([_step("replace", old, new, protect=True)]).to_text()
    first = text.split("\n\n")[1]
    assert first.startswith("replaced and deleted (first; what each keeps is said):\n")
    assert "+- shared: kubernetes:core/v1:Secret  registry-access-secret  (kept: protected" in first


def test_a_changed_path_neither_side_holds_is_changed_not_null() -> None:
    text = changeset_from_events([_step("update", {"type": "Opaque"}, {"type": "Opaque"})]).to_text()
    assert "stringData.password: (changed; not among the inputs)" in text
    assert "null" not in text


def test_json_documents_are_pretty_printed_and_diffed_by_line() -> None:
    urn = "urn:pulumi:acme::scoutflo::aws:iam/rolePolicy:RolePolicy::reader"
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["ecr:A", "ecr:B"], "Resource": "*"}],
    }
    wider = json.loads(json.dumps(policy))
    wider["Statement"][0]["Action"].append("ecr:C")

    def state(doc: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "aws:iam/rolePolicy:RolePolicy",
            "urn": urn,
            "custom": True,
            "inputs": {"policy": json.dumps(doc)},
        }

    meta = {
        "op": "update",
        "urn": urn,
        "type": "aws:iam/rolePolicy:RolePolicy",
        "old": state(policy),
        "new": state(wider),
    }
    meta["detailedDiff"] = {"policy": {"diffKind": "update", "inputDiff": True}}
    text = changeset_from_events([EngineEvent.from_json({"resourcePreEvent": {"metadata": meta}})]).to_text()
    assert '-        "ecr:B"' in text and '+        "ecr:B",' in text and '+        "ecr:C"' in text
    assert '"Version": "2012-10-17"' not in text.split("@@")[0], "the document is diffed, not shown whole"

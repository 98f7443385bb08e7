"""The folded approval text read back: every app's value is recovered from the text alone, however
its value is written, and an app named like the stack's shared group cannot exist.

A "values differ" line printed each value before the apps holding it (`1: svc00, svc03`) and the
values joined by "/" in its head: a chart value holding ": svc01" or "/" read as another app's
value or as two values."""

from __future__ import annotations

import re
from typing import Any

import pytest

from automation.changeset import changeset_from_events
from charts_catalog import load_catalog
from scoutflo.config import ConfigError, parse_config
from tests import approval_events as ae


def values_read_back(text: str) -> dict[str, dict[str, str]]:
    """{path: {app: value}} from the text's "values differ" blocks: a path is the rest of its
    head line; a value is the rest of its line after the first " = ", the apps before it (and on
    the lines above it since the last value) hold it."""
    out: dict[str, dict[str, str]] = {}
    path = None
    names: list[str] = []
    for line in text.split("\n"):
        if found := re.fullmatch(r"    values differ \(\d+ values\) in [^:]+: (.*)", line):
            path, names = found.group(1), []
            out[path] = {}
        elif path is not None and line.startswith("      "):
            listed, sep, value = line.strip().partition(" = ")
            names += [n.strip(",") for n in listed.split(", ") if n]
            if sep:
                out[path].update(dict.fromkeys(names, value))
                names = []
        else:
            path = None
    return out


# Each app's value, and how the text shows it ("1" quoted: it would read as the number).
HOSTILE = {
    "1: svc01": "1: svc01",
    "1": '"1"',
    "a/b": "a/b",
    "svc02": "svc02",
    "x, svc03 = y": "x, svc03 = y",
    "= 2": "= 2",
}


def test_every_apps_value_reads_back_from_the_text_however_it_is_written() -> None:
    apps = [
        {"name": f"svc{i:02d}", "chart": "webapp", "values": {"podAnnotations": {"note": v}}}
        for i, v in enumerate(HOSTILE)
    ]
    text = changeset_from_events(ae.as_engine_events(ae.diff_events(None, ae.record(apps)))).to_text()
    assert "svc01, svc02, svc03, svc04, svc05 (5 apps): as svc00, name replaced" in text, text
    read = values_read_back(text)
    (path,) = [p for p in read if p.endswith("podAnnotations.note")]
    assert read[path] == {f"svc{i:02d}": shown for i, shown in enumerate(HOSTILE.values())}, text


def test_a_value_with_a_line_break_is_one_line_of_the_text() -> None:
    from automation.changeset import _one_line

    assert _one_line("a\nsvc01") == '"a\\nsvc01"'
    assert _one_line("a\u2028b") == '"a\\u2028b"'
    assert _one_line("plain: svc01") == "plain: svc01"


def test_an_app_cannot_take_the_shared_groups_name() -> None:
    """The approval text, its JSON (`apps`), `make render`'s tree and the plan check group every
    resource of no app under "shared": an app of that name was listed in that group, its
    resources mixed with the OIDC provider's and the credential's."""
    raw: dict[str, Any] = {
        "scoutflo:tenant": "acme",
        "github:owner": "acme",
        "aws:region": "eu-west-1",
        "github:token": "t",
        "scoutflo:clusterOidcIssuer": "https://oidc.eks.eu-west-1.amazonaws.com/id/X",
        "scoutflo:apps": [{"name": "web", "chart": "webapp"}, {"name": "shared", "chart": "webapp"}],
    }
    with pytest.raises(ConfigError, match=r"'scoutflo:apps\[1\]' \(app 'shared'\) 'name' 'shared' is reserved"):
        parse_config(raw, load_catalog())


def test_apps_wrapped_over_lines_still_read_back_to_their_value() -> None:
    values = ["x, svc03 = y", "1: svc01"]
    apps = [
        {"name": f"svc{i:02d}", "chart": "webapp", "values": {"podAnnotations": {"note": values[i % 2]}}}
        for i in range(30)
    ]
    text = changeset_from_events(ae.as_engine_events(ae.diff_events(None, ae.record(apps)))).to_text()
    read = values_read_back(text)
    (path,) = [p for p in read if p.endswith("podAnnotations.note")]
    assert read[path] == {f"svc{i:02d}": values[i % 2] for i in range(30)}, text
    head = next(i for i, line in enumerate(text.split("\n")) if line.endswith("podAnnotations.note"))
    assert " = " not in text.split("\n")[head + 1], "15 names wrap onto a second line"


def test_a_values_key_with_a_line_break_cannot_forge_a_line_of_the_plan() -> None:
    """A chart value's key is the tenant's: its line break (the one control the text keeps) began
    a line of its own, here one that reads as an IAM role being created."""
    forged = "   + aws:iam/role:Role  admin-everything"
    apps = [{"name": "svc00", "chart": "webapp", "values": {"podAnnotations": {f"x\n{forged}": "1"}}}]
    text = changeset_from_events(ae.as_engine_events(ae.diff_events(None, ae.record(apps)))).to_text()
    assert not any(line.startswith(forged) for line in text.split("\n")), text
    assert f'podAnnotations["x\\n{forged}"]: "1"' in text

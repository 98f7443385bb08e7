"""Argument errors of a run that asked for JSON are JSON, however it asked. argparse took `--js`
for `--json` (prefix matching), so such a run printed its argument errors as text to a caller
parsing stdout; `--json=1` was text as well."""

from __future__ import annotations

import json

import pytest

from automation.__main__ import main


@pytest.mark.parametrize("words", [["preview", "--json=1"], ["preview", "--bogus", "--json=yes"]])
def test_an_argument_error_of_a_json_run_is_json(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(words)
    assert exited.value.code == 2
    answer = json.loads(capsys.readouterr().out)
    assert answer["error"] == "bad-arguments", answer


@pytest.mark.parametrize("words", [["preview", "--js", "--tenant", "t.json"], ["preview", "--jso"]])
def test_an_abbreviation_is_no_json_switch(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(words)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: " in err or "required: --tenant" in err, err

import pytest

from scoutflo.charts.versions import VersionError, highest_match, parse_constraint, parse_version


@pytest.mark.parametrize(
    ("constraint", "version", "expected"),
    [
        (">=16.0.0 <17.0.0", "16.2.1", True),
        (">=16.0.0 <17.0.0", "17.0.0", False),
        (">=16.0.0 <17.0.0", "16.3.0-rc.1", False),
        ("*", "2.0.0-rc.1", False),
        ("*-0", "2.0.0-rc.1", True),
        (">=2.0.0-rc.0", "2.0.0-rc.1", True),
        ("1.2.*", "1.2.9", True),
        ("1.2.x", "1.3.0", False),
        ("1.2", "1.2.5", True),
        ("~1.2.3", "1.2.9", True),
        ("~1.2.3", "1.3.0", False),
        ("^1.2.3", "1.9.0", True),
        ("^1.2.3", "2.0.0", False),
        ("^0.2.3", "0.2.9", True),
        ("^0.2.3", "0.3.0", False),
        ("^0.0.3", "0.0.4", False),
        ("1.2.3", "1.2.3", True),
        ("=1.2.3", "1.2.4", False),
        ("!=1.2.3", "1.2.4", True),
        ("1.0.0 - 1.4.0", "1.4.0", True),
        ("1.0.0 - 1.4", "1.4.9", True),
        ("1.0.0 - 1.4", "1.5.0", False),
        ("<1.0.0 || >=3.0.0", "3.1.0", True),
        ("<1.0.0 || >=3.0.0", "2.0.0", False),
        (">= 1.2.0, < 2.0.0", "1.5.0", True),
        (">1.2", "1.3.0", True),
        (">1.2", "1.2.9", False),
        ("<=1.2", "1.2.9", True),
        (">=1.17.0 <2.0.0", "v1.18.2", True),
    ],
)
def test_constraints(constraint: str, version: str, expected: bool) -> None:
    assert parse_constraint(constraint).allows(version) is expected


def test_newest_stable_wins_and_numeric_order() -> None:
    tags = ["1.2.0", "1.10.0", "2.0.0-rc.1", "latest", "1.9.9"]
    assert highest_match(tags, "*") == "1.10.0"
    assert highest_match(tags, ">=1.0.0 <1.10.0") == "1.9.9"
    assert highest_match(tags, "*-0") == "2.0.0-rc.1"
    assert highest_match(tags, ">=3.0.0") is None


def test_oci_tags_with_build_metadata() -> None:
    # `helm push` writes 1.2.3+build as the tag 1.2.3_build; it still sorts as semver.
    assert highest_match(["1.2.3_build.1", "1.2.2"], "*") == "1.2.3_build.1"


def test_exact_pin() -> None:
    assert parse_constraint("1.2.3").is_exact
    assert not parse_constraint("*").is_exact
    assert not parse_constraint(">=1.2.3").is_exact


@pytest.mark.parametrize(
    "bad", ["", "   ", "latest", ">=x.y", "1.2.3.4", "<*", "||", ">=1.0.0 ||", "!=1.2", ">=", "1.0.0 >=", "^"]
)
def test_bad_constraints(bad: str) -> None:
    with pytest.raises(VersionError):
        parse_constraint(bad)


def test_parse_version() -> None:
    assert str(parse_version("v1.17.0")) == "1.17.0"
    with pytest.raises(VersionError):
        parse_version("1.2")

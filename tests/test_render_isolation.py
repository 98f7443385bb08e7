"""One process runs the program many times (the render command, the suite): a run that fails
part-way must leave nothing that breaks the next one."""

from __future__ import annotations

import pytest

from tests.conftest import of_type, run_main
from tests.test_refresher_lifecycle import NONE_MODE


def test_a_run_that_failed_in_an_apply_leaves_the_next_run_whole() -> None:
    # The account check runs inside an apply, after resources were registered: the failed run's
    # outputs stay tracked by the SDK (pulumi/output.py `_track`) on a loop that is closed after it.
    other = "arn:aws:iam::999999999999:role/ArgoCDCapabilityRole"
    with pytest.raises(Exception, match="names a role in account 999999999999"):
        run_main({**NONE_MODE, "scoutflo:argocdCapabilityRoleArn": other})
    assert of_type(run_main(), "aws:ecr/repository:Repository")

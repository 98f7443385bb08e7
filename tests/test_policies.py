"""IAM documents of scoutflo/aws/policies.py (pure functions)."""

from __future__ import annotations

import pytest

from scoutflo.aws.policies import github_subject, github_trust


def test_ci_trust_is_one_exact_id_based_subject() -> None:
    subject = github_subject("Acme", 123, "shop", 456)
    assert subject == "repo:Acme@123/shop@456:ref:refs/heads/main"
    condition = github_trust("arn:aws:iam::1:oidc-provider/token.actions.githubusercontent.com", subject)["Statement"][
        0
    ]["Condition"]
    assert condition == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": subject,
        }
    }


@pytest.mark.parametrize(("owner_id", "repo_id"), [("", 1), ("*", 1), (1, ""), (1, "12a"), (None, 1)])
def test_ci_trust_needs_both_numeric_ids(owner_id: object, repo_id: object) -> None:
    with pytest.raises(ValueError, match="must be a positive number"):
        github_subject("acme", owner_id, "shop", repo_id)  # type: ignore[arg-type]

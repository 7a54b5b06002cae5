"""`ampd policy`: what it needs to know, and what it says when it does not know it."""

from __future__ import annotations

import io
import json
from typing import Any

from ampd.aws.plan.policy import Arns, PolicyInputs, boundary_policy, manage_policy
from ampd.commands.policy import policy_command
from ampd.errors import TemporaryError
from ampd.spec.models import StateSpec

SPEC = StateSpec.model_validate(
    {
        "version": 1,
        "stack": "prod",
        "aws": {"region": "eu-west-1"},
        "workspace": {"alias": "m", "rule_groups": [{"name": "node", "file": "/r.yml"}]},
        "iam": {"writer": {}, "reader": {}},
        "prometheus": {},
    }
)


class NoSts:
    def identity(self) -> Any:
        raise TemporaryError("GetCallerIdentity: no AWS credentials", delay=1)


def run(spec: StateSpec, kind: str, **kw: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    kw.setdefault("region", "eu-west-1")
    kw.setdefault("account", "123456789012")
    code = policy_command(
        spec,
        kind,  # type: ignore[arg-type]
        gateway=lambda _r: NoSts(),  # type: ignore[arg-type,return-value]
        stdout=out,
        stderr=err,
        **kw,
    )
    return code, out.getvalue(), err.getvalue()


def test_prints_json_and_says_what_to_do_with_it() -> None:
    code, out, err = run(SPEC, "manage", workspace_id="ws-1")
    assert code == 0
    doc = json.loads(out)
    assert "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1" in out
    assert doc["Statement"][0]["Sid"] == "AmpdFindWorkspace"
    assert "permissions boundary arn:aws:iam::123456789012:policy/ampd-boundary-prod" in err
    code, _, err = run(SPEC, "boundary")
    assert code == 0 and "create it as the customer managed policy ampd-boundary-prod" in err
    assert "workspace id is not known here" in err


def test_what_it_cannot_know_is_an_error_not_a_guess() -> None:
    code, out, err = run(SPEC, "manage", region=None)
    assert (code, out) == (1, "") and "pass --region" in err
    code, out, err = run(SPEC, "manage", account=None)
    assert (code, out) == (1, "") and "pass --account" in err
    nothing = StateSpec.model_validate({"version": 1, "prometheus": {"enabled": False}})
    code, out, err = run(nothing, "host")
    assert (code, out) == (1, "") and "needs no permission" in err


def test_a_named_boundary_is_used_as_given() -> None:
    spec = SPEC.model_copy(
        update={"iam": SPEC.iam.model_copy(update={"permissions_boundary": "org-boundary"})}  # type: ignore[union-attr]
    )
    arns = Arns.of("eu-west-1", "123456789012")
    doc = json.dumps(manage_policy(PolicyInputs(spec, arns)))
    assert "arn:aws:iam::123456789012:policy/org-boundary" in doc
    assert "ampd-boundary-prod" not in doc


def test_the_boundary_allows_no_write_of_the_control_plane() -> None:
    doc = boundary_policy(PolicyInputs(SPEC, Arns.of("eu-west-1", "123456789012")))
    actions = {a for st in doc["Statement"] for a in st["Action"]}
    writes = {
        a
        for a in actions
        if a.split(":")[1].startswith(("Create", "Put", "Delete", "Update", "Tag", "Attach"))
    }
    assert writes == set()
    assert "aps:RemoteWrite" in actions and "aps:QueryMetrics" in actions

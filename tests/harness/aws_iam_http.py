"""The IAM operations the emulator answers itself, mixed into its request handler:
``SimulatePrincipalPolicy`` (moto has none) and AWS's paging of the lists moto answers
whole."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from tests.harness.aws_iam_pages import (
    cut_page,
    limit_of,
    marker_offset,
    simulate_page,
    whole_request,
)
from tests.harness.aws_routes import Routes
from tests.harness.aws_wire import form_members, xml_text

if TYPE_CHECKING:
    pass

__all__ = ["IamRoutes"]


class IamRoutes(Routes):
    """Mixed into the request handler: ``_simulate`` and ``_iam_list``."""

    def _simulate(self, body: bytes) -> None:
        """``iam:SimulatePrincipalPolicy`` (moto has none): the principal's inline and
        attached policies, and its permissions boundary, evaluated by
        ``tests.harness.iam_eval`` for each action on each resource."""
        from tests.harness.iam_eval import Request, decide  # noqa: PLC0415 (only here)

        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        source = form.get("PolicySourceArn", "")
        actions = form_members(form, "ActionNames")
        resources = form_members(form, "ResourceArns") or ["*"]
        found = self.emulator.principal_policies(source)
        if found is None:
            message = f"The principal {source} cannot be found."
            self._error("iam", 404, "NoSuchEntity", message)
            return
        policies, boundary = found
        members = []
        for action in actions:
            for resource in resources:
                decision = decide(policies, Request(action, resource), boundary)
                members.append(
                    "<member>"
                    f"<EvalActionName>{xml_text(action)}</EvalActionName>"
                    f"<EvalResourceName>{xml_text(resource)}</EvalResourceName>"
                    f"<EvalDecision>{decision}</EvalDecision>"
                    "<MatchedStatements/><MissingContextValues/>"
                    "</member>"
                )
        paged = simulate_page(members, form, self.emulator.current_page_size())
        if paged is None:
            self._error("iam", 400, "InvalidInput", "Invalid Marker")
            return
        shown, marker = paged
        more = f"<IsTruncated>true</IsTruncated><Marker>{marker}</Marker>" if marker else ""
        xml = (
            '<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
            "<SimulatePrincipalPolicyResult>"
            f"<EvaluationResults>{''.join(shown)}</EvaluationResults>"
            f"{more or '<IsTruncated>false</IsTruncated>'}"
            "</SimulatePrincipalPolicyResult>"
            "<ResponseMetadata><RequestId>emulated</RequestId></ResponseMetadata>"
            "</SimulatePrincipalPolicyResponse>"
        )
        self._send(200, xml.encode(), {"Content-Type": "text/xml"})

    def _iam_list(self, operation: str, body: bytes) -> None:
        """A list moto answers whole: AWS's page of it (MaxItems, IsTruncated, Marker)."""
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(errors="replace")).items()}
        limit = limit_of(form, self.emulator.current_page_size())
        offset = marker_offset(form.get("Marker"))
        if limit is None and offset == 0:
            self._forward(body)
            return
        if offset < 0:
            self._error("iam", 400, "InvalidInput", "Invalid Marker")
            return
        whole = whole_request(body)
        self._forward(whole, hold=True)
        held, self._held = self._held, None
        assert held is not None
        status, headers, data = held
        if status == 200:
            data = cut_page(operation, data, offset, limit if limit is not None else 1000)
        self._relay(status, headers, data)

"""Two more things AMP holds for a workspace, kept by the emulator itself (moto has
neither): the query logging configuration and the resource policy.

Both follow botocore's ``amp`` model: the query logging configuration is CREATING or
UPDATING for ``transition_delay``, then ACTIVE; DELETING, then gone; its one destination
is validated as AMP does (the log group ARN's pattern, ``qspThreshold >= 0``). The
resource policy has a ``revisionId`` that every put and delete changes: a put or delete
naming another revision is refused with 409 ConflictException (someone edited it since it
was read), as is a put naming ``NO_POLICY`` when there is one (someone made it since the
caller read "none"), and any write while it is CREATING, UPDATING or DELETING; a put
naming no revision writes regardless, as AMP's documentation says. A second create of
the query logging configuration is refused with a ValidationException: botocore's model
names no other error for that create.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.harness.aws_amp import Phase, conflict, invalid, not_found

_LOG_GROUP_ARN = (
    r"arn:aws[a-z0-9-]*:logs:[a-z0-9-]+:[0-9]{12}:log-group:[A-Za-z0-9\.\-\_\#/]{1,512}\:\*"
)
_GONE = "GONE"  # not an AMP status: a DELETING resource that has gone
NO_POLICY = "NO_POLICY"  # PutResourcePolicy's revisionId for "there is none yet"


@dataclass
class QueryLogging:
    phase: Phase
    destinations: list[dict[str, Any]]
    created: float
    modified: float


@dataclass
class ResourcePolicy:
    phase: Phase
    document: str
    revision: str


def _destinations(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = params.get("destinations")
    if not isinstance(found, list) or len(found) != 1:
        raise invalid("destinations must hold exactly one destination", "destinations")
    [d] = found
    arn = str(((d or {}).get("cloudWatchLogs") or {}).get("logGroupArn") or "")
    if not re.fullmatch(_LOG_GROUP_ARN, arn):
        raise invalid(
            f"logGroupArn {arn!r} does not match the log group ARN pattern",
            "destinations.cloudWatchLogs.logGroupArn",
        )
    threshold = ((d or {}).get("filters") or {}).get("qspThreshold")
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0:
        raise invalid("qspThreshold must be an integer >= 0", "destinations.filters.qspThreshold")
    return [{"cloudWatchLogs": {"logGroupArn": arn}, "filters": {"qspThreshold": threshold}}]


def _document(params: Mapping[str, Any]) -> str:
    text = params.get("policyDocument")
    try:
        doc = json.loads(str(text))
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("Statement"), list | dict):
        raise invalid("policyDocument is not a policy document (JSON with a Statement)")
    return str(text)


class AmpExtras:
    """The query logging configurations and resource policies of every workspace. Every
    method runs under the emulator's lock."""

    def __init__(self, settle: Callable[[], float]) -> None:
        self._settle = settle  # when a transition that starts now ends
        self.query_logging: dict[str, QueryLogging] = {}
        self.policies: dict[str, ResourcePolicy] = {}

    def _sweep(self, ws_id: str) -> None:
        q = self.query_logging.get(ws_id)
        if q is not None and q.phase.now()[0] == _GONE:
            del self.query_logging[ws_id]
        p = self.policies.get(ws_id)
        if p is not None and p.phase.now()[0] == _GONE:
            del self.policies[ws_id]

    # -- query logging ------------------------------------------------------------------

    def query_logging_op(self, op: str, ws_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        self._sweep(ws_id)
        q = self.query_logging.get(ws_id)
        kind = "QUERY_LOGGING_CONFIGURATION"
        if op != "CreateQueryLoggingConfiguration" and q is None:
            raise not_found(ws_id, kind, "Query logging configuration not found")
        if op == "DescribeQueryLoggingConfiguration":
            assert q is not None
            return {
                "queryLoggingConfiguration": {
                    "status": q.phase.doc(),
                    "workspace": ws_id,
                    "destinations": q.destinations,
                    "createdAt": q.created,
                    "modifiedAt": q.modified,
                }
            }
        if op == "DeleteQueryLoggingConfiguration":
            assert q is not None
            if q.phase.busy:
                raise conflict(ws_id, kind, f"Query logging configuration is {q.phase.now()[0]}")
            q.phase = Phase("DELETING", self._settle(), _GONE)
            return {}
        destinations = _destinations(params)
        now = time.time()
        if op == "CreateQueryLoggingConfiguration":
            if q is not None:  # botocore's model names no ConflictException for this create
                raise invalid("A query logging configuration already exists for this workspace")
            phase = Phase("CREATING", self._settle())
            self.query_logging[ws_id] = QueryLogging(phase, destinations, now, now)
            return {"status": {"statusCode": "CREATING"}}
        assert q is not None
        if q.phase.busy:
            raise conflict(ws_id, kind, f"Query logging configuration is {q.phase.now()[0]}")
        q.destinations, q.modified = destinations, now
        q.phase = Phase("UPDATING", self._settle())
        return {"status": {"statusCode": "UPDATING"}}

    # -- resource policy ----------------------------------------------------------------

    def policy_op(self, op: str, ws_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        self._sweep(ws_id)
        p = self.policies.get(ws_id)
        kind = "WORKSPACE"
        if op == "DescribeResourcePolicy":
            if p is None:
                raise not_found(ws_id, kind, "Resource policy not found")
            return {
                "policyDocument": p.document,
                "policyStatus": p.phase.now()[0],
                "revisionId": p.revision,
            }
        revision = params.get("revisionId")
        if p is not None and p.phase.busy:
            raise conflict(ws_id, kind, f"Resource policy is {p.phase.now()[0]}")
        if revision == NO_POLICY and op == "PutResourcePolicy":
            if p is not None:  # someone made one since the caller read "none"
                raise conflict(
                    ws_id,
                    kind,
                    f"revisionId {NO_POLICY} does not match: the workspace has a resource "
                    f"policy (revision {p.revision})",
                )
        elif revision is not None and (p is None or p.revision != revision):
            current = p.revision if p is not None else "none"
            raise conflict(
                ws_id,
                kind,
                f"revisionId {revision} does not match the resource policy's current "
                f"revision ({current})",
            )
        if op == "DeleteResourcePolicy":
            if p is None:
                raise not_found(ws_id, kind, "Resource policy not found")
            p.phase = Phase("DELETING", self._settle(), _GONE)
            p.revision = str(uuid.uuid4())
            return {}
        document = _document(params)
        status = "CREATING" if p is None else "UPDATING"
        new = ResourcePolicy(Phase(status, self._settle()), document, str(uuid.uuid4()))
        self.policies[ws_id] = new
        return {"policyStatus": status, "revisionId": new.revision}

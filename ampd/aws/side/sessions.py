"""The AWS side's readers and identities, one per (region, endpoint), kept across passes
and dropped when AWS rejects their credentials. A reader's writer (the same clients) is
made at apply, from the writers the pass is handed."""

from __future__ import annotations

from collections.abc import Callable

from ampd.aws.gateway.client import AwsReader, CredentialsRejected, Identity
from ampd.engine.facts import Facts
from ampd.errors import AmpdError
from ampd.spec.models import StateSpec

GatewayFactory = Callable[[str, str | None], AwsReader]  # makes readers


class Sessions:
    def __init__(self, factory: GatewayFactory) -> None:
        self._factory = factory
        self._readers: dict[tuple[str, str | None], AwsReader] = {}
        self._identities: dict[tuple[str, str | None], Identity] = {}

    def reader(self, region: str, endpoint: str | None) -> AwsReader:
        key = (region, endpoint)
        if key not in self._readers:
            self._readers[key] = self._factory(region, endpoint)
        return self._readers[key]

    def forget_credentials(self, region: str, endpoint: str | None, e: AmpdError) -> None:
        """Rejected credentials: the next pass builds a new reader, whose session reads
        the credential chain again (a rotated shared file, new instance-role keys)."""
        if isinstance(e, CredentialsRejected):
            self._readers.pop((region, endpoint), None)
            self._identities.pop((region, endpoint), None)

    def identity(
        self, gw: AwsReader, region: str, spec: StateSpec, facts: Facts | None
    ) -> Identity:
        """The account, without a call where instance metadata already says it: an observe
        host takes it from the instance identity document (IMDSv2); a manager asks STS,
        whose answer is the account of the credentials in use, so that its clientToken is
        the one every other manager of the stack derives."""
        key = (region, spec.aws_or_default.endpoint_url)
        if key not in self._identities:
            account = facts.instance_labels.get("account_id") if facts is not None else None
            if spec.aws_or_default.mode == "observe" and account:
                self._identities[key] = Identity(account=account, arn="")
            else:
                self._identities[key] = gw.identity()
        return self._identities[key]

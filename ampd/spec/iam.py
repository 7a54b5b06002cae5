"""The state file's ``iam`` section: the writer and reader roles ampd manages."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    model_validator,
)

from ampd.spec.types import IamName, Strict, _check_arn


class WriterSpec(Strict):
    role_name: IamName = "ampd-writer"
    instance_profile: IamName | None = "ampd-writer"
    policy: Literal["scoped", "managed"] = "scoped"
    manage: bool = True


_PRINCIPAL_RE = re.compile(
    r"^arn:aws[a-z-]*:(iam::\d{12}:(root|role/.+|user/.+)|sts::\d{12}:assumed-role/.+)$"
)
AccountId = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]


def _check_principal(text: str) -> str:
    _check_arn(text)
    if not _PRINCIPAL_RE.match(text):
        raise ValueError(
            f"{text!r} is not an IAM principal: a role, user or account root ARN "
            "(arn:aws:iam::ACCOUNT:role/NAME)"
        )
    return text


Principal = Annotated[str, AfterValidator(_check_principal)]


def _check_policy_ref(text: str) -> str:
    if text.startswith("arn:"):
        if not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:policy/[\w+=,.@/-]{1,128}$", text):
            raise ValueError(f"{text!r} is not a policy ARN (arn:aws:iam::ACCOUNT:policy/NAME)")
    elif not re.match(r"^[\w+=,.@-]{1,128}$", text):
        raise ValueError(f"{text!r} is not a policy name or ARN")
    return text


PolicyRef = Annotated[str, AfterValidator(_check_policy_ref)]


class ReaderSpec(Strict):
    role_name: IamName = "ampd-reader"
    policy: Literal["scoped", "managed"] = "scoped"
    manage: bool = True
    # principals in this host's own account only, unless their account is listed below
    trusted: list[Literal["writer"] | Principal] = Field(default_factory=lambda: ["writer"])
    trusted_accounts: list[AccountId] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_own_account(self) -> ReaderSpec:
        accounts = {t.split(":")[4] for t in self.trusted if t != "writer"}
        foreign = sorted(accounts - set(self.trusted_accounts))
        if len(foreign) > 1:
            raise ValueError(
                f"trusted names principals in accounts {', '.join(foreign)}: only this "
                "host's own account is trusted unless iam.reader.trusted_accounts lists it"
            )
        return self


class IamSpec(Strict):
    writer: WriterSpec | None = None
    reader: ReaderSpec | None = None
    # every role ampd creates carries this permissions boundary: a policy name in this
    # account or its ARN; default ampd-boundary-<stack> (`ampd policy boundary` prints it)
    permissions_boundary: PolicyRef | None = None

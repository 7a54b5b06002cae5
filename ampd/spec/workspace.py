"""The state file's ``workspace`` section: the AMP workspace and what hangs off it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    StringConstraints,
    model_validator,
)

from ampd.spec.types import Alias, Arn, FilePath, Strict, TagKey, TagValue


class LoggingSpec(Strict):
    log_group_arn: Arn | None = None


class RuleGroupSpec(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z][-.0-9A-Z_a-z]{0,63}$")]
    file: FilePath


class AlertmanagerSpec(Strict):
    file: FilePath


class WorkspaceSpec(Strict):
    alias: Alias | None = None
    id: Annotated[str, StringConstraints(pattern=r"^ws-[0-9a-zA-Z-]{1,64}$")] | None = None
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    retention_days: Annotated[int, Field(ge=1, le=1095)] | None = None
    kms_key_arn: Arn | None = None
    logging: LoggingSpec | None = None
    rule_groups: list[RuleGroupSpec] = Field(default_factory=list)
    alertmanager: AlertmanagerSpec | None = None
    deletion: Literal["retain", "delete"] = "retain"

    @model_validator(mode="after")
    def _alias_or_id(self) -> WorkspaceSpec:
        if self.alias is None and self.id is None:
            raise ValueError("name the workspace: set alias (to create or find it) or id")
        names = [g.name for g in self.rule_groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule group names must be unique; repeated: {', '.join(dupes)}")
        for key in self.tags:
            if key.startswith(("ampd:", "aws:")):
                raise ValueError(f"tag {key!r}: the ampd: and aws: prefixes are reserved")
        return self

"""The state file's ``workspace`` section: the AMP workspace and what hangs off it."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self, get_args

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    model_validator,
)

from ampd.spec.prometheus import InstanceLabel
from ampd.spec.types import (
    Alias,
    Arn,
    Duration,
    FilePath,
    LabelName,
    Strict,
    TagKey,
    TagValue,
    duration_seconds,
)

OUT_OF_ORDER_MAX = 600.0  # seconds: AMP's upper bound for outOfOrderTimeWindowInSeconds


class LoggingSpec(Strict):
    log_group_arn: Arn | None = None


INLINE_MAX = 200_000  # characters of rules or alert manager configuration in the state


class _FileOrContent(Strict):
    """A file beside the state (``file``), or the same YAML in the state itself
    (``content``): one document, so one AppConfig deployment (or SSM version) carries
    the state and its rules together, and a rollback takes both back."""

    file: FilePath | None = None
    content: Annotated[str, StringConstraints(min_length=1, max_length=INLINE_MAX)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if self.file is None and self.content is None:
            raise ValueError("needs file (beside the state) or content (the YAML itself)")
        if self.file is not None and self.content is not None:
            raise ValueError("takes file (beside the state) or content (the YAML itself), not both")
        return self


class RuleGroupSpec(_FileOrContent):
    name: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z][-.0-9A-Z_a-z]{0,63}$")]


class AlertmanagerSpec(_FileOrContent):
    pass


def _whole_seconds(text: str) -> str:
    seconds = duration_seconds(text)
    if seconds != int(seconds):
        raise ValueError(f"{text}: AMP takes whole seconds")
    return text


def _out_of_order(text: str) -> str:
    if not 0 <= duration_seconds(text) <= OUT_OF_ORDER_MAX:
        raise ValueError(f"{text}: AMP accepts an out-of-order window of 0s to 10m")
    return _whole_seconds(text)


# Instance labels differ from host to host, and a workspace has one configuration: hosts
# deriving limits from them would each write their own set over the others'.
PER_HOST_LABELS = frozenset(get_args(InstanceLabel))


class LabelSetLimitSpec(Strict):
    """``UpdateWorkspaceConfiguration.limitsPerLabelSet``: at most ``max_series`` active
    series carry these labels; ``max_series: 0`` enforces nothing but makes AMP publish
    the label set's usage to CloudWatch (a free meter).

    The label set is written out (``labels``), or derived from the labels the stack puts
    on everything it ships (``derive``: names of ``prometheus.external_labels``, whose
    values make the set): ``{derive: [cluster]}`` meters this stack's ``cluster`` and
    follows it when its value is edited. Labels that differ per host (the instance
    labels) cannot be derived: the workspace has one configuration for the fleet."""

    labels: (
        Annotated[
            dict[LabelName, Annotated[str, StringConstraints(min_length=1)]],
            Field(min_length=1),
        ]
        | None
    ) = None
    derive: Annotated[list[LabelName], Field(min_length=1)] | None = None
    max_series: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _one_way(self) -> LabelSetLimitSpec:
        if (self.labels is None) == (self.derive is None):
            raise ValueError("a label set limit takes labels (written out) or derive, not both")
        derive = self.derive or []
        dupes = sorted({n for n in derive if derive.count(n) > 1})
        if dupes:
            raise ValueError(f"derive names each label once; repeated: {', '.join(dupes)}")
        per_host = sorted(PER_HOST_LABELS.intersection(derive))
        if per_host:
            raise ValueError(
                f"derive: {', '.join(per_host)} differs per host, and the workspace has one "
                "configuration for the whole fleet (each host would write its own set over "
                "the others'); derive from prometheus.external_labels shared by the fleet"
            )
        return self


# botocore's amp model's pattern of a query log destination's log group (held to the
# model by tests/engine/test_spec_load.py): a log group ARN ending ":*"
QUERY_LOG_GROUP_ARN = re.compile(
    r"arn:aws[a-z0-9-]*:logs:[a-z0-9-]+:[0-9]{12}:log-group:[A-Za-z0-9\.\-\_\#/]{1,512}\:\*"
)
# aws:PrincipalOrgPaths: the organization, its root, then organizational units
_ORG_PATH_RE = re.compile(
    r"^o-[a-z0-9]{10,32}/r-[0-9a-z]{4,32}/(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}/)*$"
)
_ACCOUNT_RE = re.compile(r"^\d{12}$")


def _query_log_group(text: str) -> str:
    if not QUERY_LOG_GROUP_ARN.fullmatch(text):
        raise ValueError(
            f"{text!r} is not a log group ARN ending ':*' "
            "(arn:aws:logs:REGION:ACCOUNT:log-group:NAME:*)"
        )
    return text


def _writer(text: str) -> str:
    if not (_ACCOUNT_RE.match(text) or _ORG_PATH_RE.match(text)):
        raise ValueError(
            f"{text!r} is neither an account id (12 digits) nor an organization path "
            "(o-xxxxxxxxxx/r-xxxx/ou-xxxx-xxxxxxxx/, ending '/')"
        )
    return text


class QueryLoggingSpec(Strict):
    """AMP's query logging: queries that process more than ``qsp_threshold`` samples are
    logged to the CloudWatch log group (``CreateQueryLoggingConfiguration``)."""

    log_group_arn: Annotated[str, AfterValidator(_query_log_group)]
    qsp_threshold: Annotated[int, Field(ge=0)]


class ResourcePolicySpec(Strict):
    """The workspace's resource policy: who else may remote-write into it. ``writers``
    are account ids, or organization paths (every account in that organizational unit
    and the ones beneath it)."""

    writers: Annotated[list[Annotated[str, AfterValidator(_writer)]], Field(min_length=1)]

    @model_validator(mode="after")
    def _once_each(self) -> ResourcePolicySpec:
        dupes = sorted({w for w in self.writers if self.writers.count(w) > 1})
        if dupes:
            raise ValueError(f"writers may be listed once each; repeated: {', '.join(dupes)}")
        return self


class WorkspaceSpec(Strict):
    alias: Alias | None = None
    id: Annotated[str, StringConstraints(pattern=r"^ws-[0-9a-zA-Z-]{1,64}$")] | None = None
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    retention_days: Annotated[int, Field(ge=1, le=1095)] | None = None
    # how late a sample may arrive and still be accepted (AMP: 0-600 s, 60 s if unset)
    out_of_order_window: Annotated[Duration, AfterValidator(_out_of_order)] | None = None
    # how far behind "now" recording and alerting rules query (AMP: 0 s if unset)
    rule_query_offset: Annotated[Duration, AfterValidator(_whole_seconds)] | None = None
    label_set_limits: list[LabelSetLimitSpec] = Field(default_factory=list)
    kms_key_arn: Arn | None = None
    logging: LoggingSpec | None = None
    query_logging: QueryLoggingSpec | None = None
    resource_policy: ResourcePolicySpec | None = None
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
        sets = [
            tuple(sorted(limit.labels.items()))
            if limit.labels is not None
            else ("derive", *sorted(limit.derive or []))
            for limit in self.label_set_limits
        ]
        if len(set(sets)) != len(sets):
            raise ValueError("label_set_limits: each label set may be listed once")
        for key in self.tags:
            if key.startswith(("ampd:", "aws:")):
                raise ValueError(f"tag {key!r}: the ampd: and aws: prefixes are reserved")
        return self

"""Where a state document lives (``SourceRef``: a path, ``ssm:NAME``, ``s3://BUCKET/KEY`` or
``appconfig:APPLICATION/ENVIRONMENT/PROFILE``), and which names beside it stay inside its
own prefix. Pure: no I/O.

An AppConfig state's prefix is its application and environment: a file it names is the
configuration profile of that name (or id) beside it, ``rules.yml`` ->
``appconfig:APP/ENV/rules.yml``; nothing outside the application is ever read."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Literal

__all__ = ["Kind", "SourceRef", "outside_prefix", "parse_ref"]

Kind = Literal["file", "ssm", "s3", "appconfig"]

APPCONFIG_NAME_MAX = 128  # AppConfig takes names of 1-64 characters, ids of 7, ARNs longer


@dataclass(frozen=True, order=True)
class SourceRef:
    """A state document's location. ``str()`` gives it back as the user writes it."""

    kind: Kind
    name: str  # file path, SSM parameter name, S3 key, or APPLICATION/ENVIRONMENT/PROFILE
    bucket: str = ""

    def __str__(self) -> str:
        if self.kind == "ssm":
            return f"ssm:{self.name}"
        if self.kind == "s3":
            return f"s3://{self.bucket}/{self.name}"
        if self.kind == "appconfig":
            return f"appconfig:{self.name}"
        return self.name

    @property
    def parts(self) -> tuple[str, str, str]:
        """An AppConfig ref's (application, environment, configuration profile)."""
        app, env, profile = self.name.split("/", 2)
        return app, env, profile

    @property
    def remote(self) -> bool:
        return self.kind != "file"

    @property
    def prefix(self) -> str:
        """Where the files this document names must live: its SSM path (``/fleet/prod/``;
        empty for a flat name) or its S3 key prefix (``fleet/``; empty at the top)."""
        if self.kind == "file":
            return ""
        head, sep, _ = self.name.rpartition("/")
        return head + sep

    def describe_prefix(self) -> str:
        if self.kind == "ssm":
            return f"ssm:{self.prefix}" if self.prefix else "the flat parameter names"
        if self.kind == "s3":
            return f"s3://{self.bucket}/{self.prefix}"
        if self.kind == "appconfig":
            return f"the configuration profiles of appconfig:{self.prefix}"
        return self.name

    def beside(self, relative: str) -> SourceRef:
        """A document named relative to this one, inside its prefix (same SSM path, same
        S3 key directory). ValueError (one line, says why) for a name that would leave
        the prefix: ``..``, an absolute name, or an explicit ``ssm:``/``s3://`` one."""
        problem = outside_prefix(self, relative)
        if problem is not None:
            raise ValueError(problem)
        joined = self.prefix + posixpath.normpath(relative)
        return SourceRef(self.kind, joined, self.bucket)


def outside_prefix(ref: SourceRef, relative: str) -> str | None:
    """Why ``relative`` (a file named by the remote document ``ref``) would be read from
    outside ``ref``'s own prefix, or None when it stays inside. Pure: nothing is fetched."""
    where = ref.describe_prefix()
    if relative.startswith(("ssm:", "s3:", "appconfig:")):
        return (
            f"{relative}: a remote state may only name files beside it (under {where}),"
            " not another ssm:, s3:// or appconfig: name"
        )
    if relative.startswith("/"):
        return (
            f"{relative}: an absolute name is not allowed in a remote state;"
            f" name the file relative to it (read from {where})"
        )
    parts = relative.split("/")
    if ".." in parts:
        return f"{relative}: '..' would leave the state's prefix ({where})"
    if not relative or any(p == "" for p in parts) or posixpath.normpath(relative) == ".":
        return f"{relative!r}: not a file name (an empty segment)"
    if ref.kind == "appconfig" and "/" in relative:
        return (
            f"{relative}: beside an AppConfig state a file is a configuration profile of the"
            f" same application and environment: one name, no '/' (read from {where})"
        )
    if ref.kind == "appconfig" and len(relative) > APPCONFIG_NAME_MAX:
        return f"{relative[:40]}...: not a configuration profile name (too long)"
    if ref.kind == "ssm" and not ref.prefix and "/" in relative:
        return (
            f"{relative}: beside the flat parameter {ref.name} only flat names are read"
            " (a name with '/' is another hierarchy)"
        )
    return None


def parse_ref(text: str) -> SourceRef:
    """``ssm:NAME``, ``s3://BUCKET/KEY``, ``appconfig:APP/ENV/PROFILE`` or a path. Raises
    ValueError for a malformed one."""
    if text.startswith("appconfig:"):
        parts = text[10:].split("/")
        if len(parts) != 3 or not all(parts) or any(len(p) > APPCONFIG_NAME_MAX for p in parts):
            raise ValueError(
                f"{text}: appconfig: needs APPLICATION/ENVIRONMENT/PROFILE (names or ids),"
                " e.g. appconfig:fleet/prod/ampd"
            )
        return SourceRef("appconfig", "/".join(parts))
    if text.startswith("ssm:"):
        name = text[4:]
        if not name or name.endswith("/"):
            raise ValueError(f"{text}: ssm: needs a parameter name, e.g. ssm:/fleet/prod/ampd")
        return SourceRef("ssm", name)
    if text.startswith("s3://"):
        bucket, sep, key = text[5:].partition("/")
        if not bucket or not sep or not key or key.endswith("/"):
            raise ValueError(f"{text}: s3:// needs a bucket and a key, e.g. s3://bucket/ampd.yml")
        return SourceRef("s3", key, bucket)
    return SourceRef("file", text)

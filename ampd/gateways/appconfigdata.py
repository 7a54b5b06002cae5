"""A state document followed through the AWS AppConfig Data API.

``appconfig:APPLICATION/ENVIRONMENT/PROFILE`` (names or ids) is read as the AppConfig Agent
reads a configuration: ``StartConfigurationSession`` once, then ``GetLatestConfiguration``
with the token the previous answer gave. AppConfig decides which version each session gets
(a deployment moves a new version to a growing share of sessions, and a rollback moves them
back), so this host runs what its deployment gave it.

- **The server paces the polls.** The session asks for ``RequiredMinimumPollIntervalInSeconds``
  (the state's ``poll_interval``, at least 15 s, AppConfig's floor); each answer says when the
  next poll may be made (``NextPollIntervalInSeconds``). Until then no call is made: an early
  look (a reload) answers "unchanged" from what this session last received.
- **Only a new version carries content.** An empty answer means "what you have"; the bytes
  seen last are kept, so that a caller that dropped its copy still gets them.
- **The version** is the hosted configuration version's ``VersionLabel`` when it has one,
  else ``sha256:`` and the first 12 hex digits of the content (the Data API does not say the
  version number).
- A used, expired or corrupted token (BadRequestException) starts a new session at once; a
  poll the server finds too early (``PollIntervalNotSatisfied``) keeps its token and is made
  again a little later; any other failed call drops the token (it may have been used), so
  the next look starts a new session.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ampd.gateways.sourceref import SourceRef

__all__ = ["MIN_POLL", "Answer", "AppConfigSessions", "version_of"]

MIN_POLL = 15  # AppConfig's RequiredMinimumPollIntervalInSeconds: 15 .. 86400
MAX_POLL = 86400
DEFAULT_NEXT_POLL = 60.0  # AppConfig's answer when a session asked for nothing
TOO_EARLY_WAIT = 5.0  # a poll AppConfig found too early (clocks apart): tried again after


def version_of(label: str | None, data: bytes) -> str:
    """What a version is called: its VersionLabel, else a short content hash."""
    if label:
        return label
    return "sha256:" + hashlib.sha256(data).hexdigest()[:12]


@dataclass
class _Session:
    token: str | None = None
    requested: int = 0  # the RequiredMinimumPollIntervalInSeconds it was started with
    not_before: float = 0.0  # clock value before which the server wants no poll
    version: str | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class Answer:
    """What one look found: the version and its bytes (None: the caller's ``known``
    version is current), or a failure the caller turns into its own error."""

    version: str | None
    data: bytes | None
    error: BaseException | None = None
    no_content: bool = False  # the profile has no configuration deployed to the environment


class AppConfigSessions:
    """One configuration session per profile read; ``client`` makes (or returns) the
    ``appconfigdata`` client. Calls are serialized: a token is used once."""

    def __init__(
        self,
        client: Callable[[], Any],
        *,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._max_bytes = max_bytes
        self._clock = clock
        self._sessions: dict[SourceRef, _Session] = {}
        self._lock = threading.Lock()
        self._interval = MIN_POLL
        self.calls = 0

    def pace(self, seconds: float) -> None:
        """The poll interval the state asks for; new sessions ask the server for it (a
        changed value starts new sessions)."""
        self._interval = max(MIN_POLL, min(MAX_POLL, round(seconds)))

    def wait_before(self, ref: SourceRef) -> float:
        """Seconds until the server lets ``ref``'s session poll again (0: now)."""
        s = self._sessions.get(ref)
        return 0.0 if s is None else max(0.0, s.not_before - self._clock())

    def look(self, ref: SourceRef, known: str | None) -> Answer:
        """``ref``'s newest version for this session; raises nothing: a failure is in
        ``Answer.error`` (a botocore or network exception, or one of ``client()``'s)."""
        with self._lock:
            s = self._sessions.setdefault(ref, _Session())
            if s.data is not None and self._clock() < s.not_before:
                return self._answer(s, known)  # not time yet: the server paces the polls
            try:
                return self._look(ref, s, known)
            except Exception as e:  # handed back: the fetcher knows botocore's errors
                s.token = None  # it may have been used: the next look starts a session
                return Answer(None, None, e)

    def _look(self, ref: SourceRef, s: _Session, known: str | None) -> Answer:
        client = self._client()
        for attempt in range(2):
            if s.token is None or s.requested != self._interval:
                s.token, s.requested = self._start(client, ref), self._interval
            self.calls += 1
            try:
                resp = client.get_latest_configuration(ConfigurationToken=s.token)
            except Exception as e:
                if _problem(e) == "PollIntervalNotSatisfied" and s.data is not None:
                    s.not_before = self._clock() + TOO_EARLY_WAIT  # the token stays good
                    return self._answer(s, known)
                if attempt == 0 and _problem(e) is not None:
                    s.token = None  # used, expired or corrupted: a new session, once
                    continue
                raise
            return self._took(s, resp, known)
        raise AssertionError("unreachable")  # pragma: no cover (the loop returns or raises)

    def _start(self, client: Any, ref: SourceRef) -> str:
        app, env, profile = ref.parts
        self.calls += 1
        resp = client.start_configuration_session(
            ApplicationIdentifier=app,
            EnvironmentIdentifier=env,
            ConfigurationProfileIdentifier=profile,
            RequiredMinimumPollIntervalInSeconds=self._interval,
        )
        return str(resp["InitialConfigurationToken"])

    def _took(self, s: _Session, resp: dict[str, Any], known: str | None) -> Answer:
        s.token = str(resp["NextPollConfigurationToken"])
        wait = float(resp.get("NextPollIntervalInSeconds") or DEFAULT_NEXT_POLL)
        s.not_before = self._clock() + wait
        body = resp.get("Configuration")
        data = b""
        if body is not None:
            try:
                data = body.read(self._max_bytes + 1)
            finally:
                body.close()
        if data:
            if data != s.data:  # a new session's first answer may repeat what we have
                version = version_of(resp.get("VersionLabel"), data)
                if version == s.version:  # a label used again for other content
                    version = f"{version}+{version_of(None, data)}"
                s.data, s.version = data, version
        elif s.data is None:
            return Answer(None, None, no_content=True)
        return self._answer(s, known)

    @staticmethod
    def _answer(s: _Session, known: str | None) -> Answer:
        return Answer(s.version, None if known == s.version else s.data)


def _problem(e: Exception) -> str | None:
    """A BadRequestException's problem with the token (``Expired``, ``Corrupted``,
    ``PollIntervalNotSatisfied``; ``""`` when it names none); None for any other error."""
    response = getattr(e, "response", None)
    if not isinstance(response, dict) or response.get("Error", {}).get("Code") != (
        "BadRequestException"
    ):
        return None
    details = response.get("Details") or {}
    token = (details.get("InvalidParameters") or {}).get("ConfigurationToken") or {}
    return str(token.get("Problem") or "")

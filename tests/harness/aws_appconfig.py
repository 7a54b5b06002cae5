"""The emulator's AWS AppConfig: environments, deployment strategies and deployments
(moto keeps applications, configuration profiles and hosted versions; we read them from
its in-process backend) and the AppConfig Data API's sessions.

Which version a session gets: that of the environment+profile's last COMPLETE
deployment; while a deployment is DEPLOYING/BAKING at ``p`` %, sessions are admitted to
its version in poll order until ``ceil(p/100 * active)`` are (active: the sessions of
that application/environment/profile that polled in the last 24 h); an admitted session
stays admitted; a ROLLED_BACK (or REVERTED) deployment sends everyone back.

Clock: AppConfig's own, ``time.time()`` plus what ``advance()`` added; one AppConfig
minute lasts ``minute_seconds`` of it (60 by default). Deployments follow it, unless
held (``hold``): then they move only on ``step()``. Data API tokens are single use and
expire after 24 h of it; a poll earlier than the interval the last answer gave is
refused as AppConfig refuses it (BadRequestException, ``PollIntervalNotSatisfied``,
the token stays usable) and recorded in ``early_polls()``.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.harness.aws_appconfig_plan import PREDEFINED, Deployment, Strategy
from tests.harness.aws_wire import ACCOUNT_ID

__all__ = ["AppConfig", "AppConfigError", "Environment", "Session"]

DAY = 86400.0
DEFAULT_POLL = 60  # AppConfig's poll interval when a session asks for none


class AppConfigError(Exception):
    """An AppConfig error answer: status, code (the model's shape name), message and
    the shape's other members."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def not_found(what: str, ident: str, data: bool = False) -> AppConfigError:
    if data:  # appconfigdata's shape: ResourceType (+ ReferencedBy)
        return AppConfigError(
            404, "ResourceNotFoundException", f"{what} not found: {ident}", ResourceType=what
        )
    return AppConfigError(
        404, "ResourceNotFoundException", f"{what} {ident} not found", ResourceName=ident
    )


def bad_request(message: str, **extra: Any) -> AppConfigError:
    return AppConfigError(400, "BadRequestException", message, **extra)


def new_id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(7))


@dataclass
class Environment:
    region: str
    app_id: str
    id: str
    name: str
    description: str | None
    monitors: list[dict[str, str]]


@dataclass
class Session:
    id: str
    region: str
    app_id: str
    env_id: str
    profile_id: str
    interval: int
    version: int | None = None  # the version it last received
    last_poll: float | None = None
    not_before: float = 0.0  # earliest poll the last answer allowed


@dataclass
class _State:
    environments: dict[tuple[str, str], Environment] = field(default_factory=dict)
    strategies: dict[tuple[str, str], Strategy] = field(default_factory=dict)
    deployments: dict[tuple[str, str, str], list[Deployment]] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (sid, at)
    early: list[tuple[str, float]] = field(default_factory=list)
    alarms: dict[str, str] = field(default_factory=dict)
    offset: float = 0.0
    minute: float = 60.0
    hold: bool = False
    refuse_early: bool = True
    poll_interval: int | None = None  # the interval every answer gives (None: the session's)


def moto_backend(region: str) -> Any:
    from moto.appconfig.models import appconfig_backends  # noqa: PLC0415 (moto's state)

    return appconfig_backends[ACCOUNT_ID][region]


class AppConfig:
    """AppConfig's state and the hooks tests drive it with (``AwsEmulator.appconfig``)."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._s = _State()

    def reset(self) -> None:
        with self._lock:
            self._s = _State()

    # -- test hooks ---------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self._s.offset

    def advance(self, seconds: float) -> None:
        """AppConfig's clock moves ``seconds`` ahead (deployments, poll intervals, tokens)."""
        with self._lock:
            self._s.offset += seconds

    def minute_seconds(self, seconds: float) -> None:
        """How many seconds of AppConfig's clock one AppConfig minute lasts (default 60)."""
        with self._lock:
            now = self.now()
            for dep in self._all():  # in-progress deployments keep their progress
                if dep.in_progress and not dep.held:
                    self._refresh(dep, now)
                    dep.started = now - dep.stage_offset(dep.stage, seconds)
            self._s.minute = seconds

    def hold(
        self, on: bool, app: str | None = None, env: str | None = None, number: int | None = None
    ) -> None:
        """Held deployments move only on ``step()``. Without ``app``: every deployment
        started from now on, and every one in progress; else the named one (the latest
        in progress of ``app``/``env`` when ``number`` is None)."""
        with self._lock:
            now = self.now()
            if app is None:
                self._s.hold = on
                targets = [d for d in self._all() if d.in_progress]
            else:
                targets = [self._pick(app, env or "", number)]
            for dep in targets:
                self._refresh(dep, now)
                if dep.held and not on:  # continue on the clock from where it stands
                    dep.started = now - dep.stage_offset(dep.stage, self._s.minute)
                dep.held = on

    def step(self, app: str, env: str, deployment_number: int | None = None) -> dict[str, Any]:
        """A held deployment moves to its strategy's next percentage (after 100 %: its
        bake ends, COMPLETE). Returns its GetDeployment document."""
        with self._lock:
            dep = self._pick(app, env, deployment_number)
            now = self.now()
            dep.advance_to(dep.stage + 1, now)
            self._check_alarms(dep, now)
            return dep.doc()

    def set_alarm(self, alarm_arn: str, state: str) -> None:
        """A CloudWatch alarm's state; ``ALARM`` rolls back every DEPLOYING/BAKING
        deployment of an environment that monitors it."""
        with self._lock:
            self._s.alarms[alarm_arn] = state
            now = self.now()
            for dep in self._all():
                self._refresh(dep, now)

    def refuse_early(self, on: bool) -> None:
        """Whether an early poll is refused (AppConfig's way, the default) or answered."""
        with self._lock:
            self._s.refuse_early = on

    def poll_interval(self, seconds: int | None) -> None:
        """Every GetLatestConfiguration answers this Next-Poll-Interval-In-Seconds (and
        holds the next poll to it) instead of the session's, so a fleet of real clients
        polls fast; None: AppConfig's own (the session's RequiredMinimumPollInterval)."""
        with self._lock:
            self._s.poll_interval = seconds

    def sessions(self) -> list[tuple[str, str, str, str, int | None, float | None]]:
        """(session id, application, environment, profile ids, version last received,
        last poll time) of every Data API session."""
        with self._lock:
            return [
                (s.id, s.app_id, s.env_id, s.profile_id, s.version, s.last_poll)
                for s in self._s.sessions.values()
            ]

    def early_polls(self) -> list[tuple[str, float]]:
        """(session id, seconds early) of every poll made before the interval it was given."""
        with self._lock:
            return list(self._s.early)

    def ids_of(
        self, region: str, operation: str, params: Mapping[str, Any]
    ) -> tuple[str, str, str] | None:
        """(application, environment, profile) ids a Data API request is about (as IAM
        authorizes it), from its identifiers (names or ids) or its token; None: unknown."""
        with self._lock:
            if operation == "GetLatestConfiguration":
                token = str((params.get("query") or {}).get("configuration_token", ""))
                found = self._s.tokens.get(token)
                session = self._s.sessions.get(found[0]) if found is not None else None
                if session is None:
                    return None
                return session.app_id, session.env_id, session.profile_id
            if operation != "StartConfigurationSession":
                return None
            app_ident = str(params.get("ApplicationIdentifier", ""))
            app = next(
                (
                    a
                    for a in moto_backend(region).applications.values()
                    if app_ident in (a.id, a.name)
                ),
                None,
            )
            if app is None:
                return None
            env_ident = str(params.get("EnvironmentIdentifier", ""))
            env = next(
                (
                    e
                    for e in self._s.environments.values()
                    if (e.region, e.app_id) == (region, app.id) and env_ident in (e.id, e.name)
                ),
                None,
            )
            profile_ident = str(params.get("ConfigurationProfileIdentifier", ""))
            profiles = moto_backend(region).applications[app.id].config_profiles.values()
            profile = next((p for p in profiles if profile_ident in (p.id, p.name)), None)
            if env is None or profile is None:
                return None
            return str(app.id), env.id, str(profile.id)

    def alarm_state(self, alarm_arn: str) -> str:
        with self._lock:
            return self._s.alarms.get(alarm_arn, "OK")

    # -- shared state for the routes ---------------------------------------------------

    @property
    def state(self) -> _State:
        return self._s

    def _all(self) -> list[Deployment]:
        return [d for deps in self._s.deployments.values() for d in deps]

    def _pick(self, app: str, env: str, number: int | None) -> Deployment:
        found = [
            d
            for (region, app_id, env_id), deps in self._s.deployments.items()
            for d in deps
            if app in (app_id, self.app_name(region, app_id))
            and env in (env_id, self._env_name(region, app_id, env_id))
        ]
        if number is not None:
            found = [d for d in found if d.number == number]
        else:
            found = [d for d in found if d.in_progress] or found
        if not found:
            raise KeyError(f"no deployment {number} of {app}/{env}")
        return found[-1]

    def _env_name(self, region: str, app_id: str, env_id: str) -> str:
        env = self._s.environments.get((region, env_id))
        return env.name if env is not None else env_id

    def app_name(self, region: str, app_id: str) -> str:
        app = moto_backend(region).applications.get(app_id)
        return str(app.name) if app is not None else app_id

    def refresh_all(self) -> None:
        now = self.now()
        for dep in self._all():
            self._refresh(dep, now)

    def _refresh(self, dep: Deployment, now: float) -> None:
        """Bring ``dep`` up to AppConfig's clock, and roll it back on a monitored alarm."""
        if not dep.in_progress:
            return
        if not dep.held:
            target = dep.clock_stage(now, self._s.minute)
            for k in range(dep.stage + 1, target + 1):
                dep.advance_to(k, dep.started + dep.stage_offset(k, self._s.minute))
        self._check_alarms(dep, now)

    def _check_alarms(self, dep: Deployment, now: float) -> None:
        if not dep.in_progress:
            return
        env = self._s.environments.get((dep.region, dep.env_id))
        for monitor in env.monitors if env is not None else []:
            arn = monitor["AlarmArn"]
            if self._s.alarms.get(arn) == "ALARM":
                self.roll_back(dep, "CLOUDWATCH_ALARM", f"CloudWatch alarm {arn} is in ALARM", now)
                return

    def roll_back(self, dep: Deployment, by: str, why: str, now: float) -> None:
        dep.log("ROLLBACK_STARTED", by, why, now)
        dep.ended = "ROLLED_BACK"
        dep.log("ROLLBACK_COMPLETED", by, "Rolled back to the previous configuration", now)

    def active(self, region: str, app_id: str, env_id: str, profile_id: str, now: float) -> int:
        return sum(
            1
            for s in self._s.sessions.values()
            if (s.region, s.app_id, s.env_id, s.profile_id) == (region, app_id, env_id, profile_id)
            and s.last_poll is not None
            and now - s.last_poll <= DAY
        )

    def served(self, session: Session, now: float) -> Deployment | None:
        """The deployment whose version ``session`` gets now (None: nothing deployed yet)."""
        deps = [
            d
            for d in self._s.deployments.get((session.region, session.app_id, session.env_id), [])
            if d.profile_id == session.profile_id
        ]
        for d in deps:
            self._refresh(d, now)
        base = next((d for d in reversed(deps) if d.state == "COMPLETE"), None)
        live = next((d for d in reversed(deps) if d.in_progress), None)
        if live is None:
            return base
        if session.id in live.admitted:
            return live
        key = (session.region, session.app_id, session.env_id, session.profile_id)
        if len(live.admitted) < live.admitted_count(self.active(*key, now)):
            live.admitted.append(session.id)
            return live
        return base

    def environment(self, region: str, app_id: str, ident: str) -> Environment:
        """The environment ``ident`` (id, or name) of ``app_id``."""
        for env in self._s.environments.values():
            if (env.region, env.app_id) == (region, app_id) and ident in (env.id, env.name):
                return env
        raise not_found("Environment", ident)

    def env_state(self, env: Environment) -> str:
        now = self.now()
        deps = self._s.deployments.get((env.region, env.app_id, env.id), [])
        for d in deps:
            self._refresh(d, now)
        if not deps:
            return "READY_FOR_DEPLOYMENT"
        state = deps[-1].state
        return {"DEPLOYING": "DEPLOYING", "BAKING": "DEPLOYING"}.get(
            state, state if state in ("ROLLED_BACK", "REVERTED") else "READY_FOR_DEPLOYMENT"
        )

    def env_doc(self, env: Environment) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ApplicationId": env.app_id,
            "Id": env.id,
            "Name": env.name,
            "State": self.env_state(env),
            "Monitors": env.monitors,
        }
        if env.description is not None:
            out["Description"] = env.description
        return out

    def strategy(self, region: str, ident: str) -> Strategy:
        if ident in PREDEFINED:
            return PREDEFINED[ident]
        found = self._s.strategies.get((region, ident))
        if found is None:
            raise not_found("DeploymentStrategy", ident)
        return found

    def strategies(self, region: str) -> list[Strategy]:
        own = [s for (r, _), s in self._s.strategies.items() if r == region]
        return [*PREDEFINED.values(), *own]

    def token_for(self, session: Session, now: float) -> str:
        token = secrets.token_urlsafe(48)
        self._s.tokens[token] = (session.id, now)
        return token


def params_of(doc: Mapping[str, Any], name: str, default: Any = None) -> Any:
    value = doc.get(name, default)
    return default if value is None else value

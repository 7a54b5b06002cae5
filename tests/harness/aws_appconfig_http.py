"""The emulator's AppConfig routes (both services sign as ``appconfig``; the Data API is
told apart by its paths, ``/configurationsessions`` and ``/configuration``, and recorded
and checked as ``appconfigdata``): which operation a request is, what our layer answers
(environments, deployment strategies, deployments, the Data API) and what it leaves to
moto (applications, configuration profiles, hosted versions, tags) with the status codes
of botocore's ``appconfig`` model. Also the ``/_emulator/appconfig/...`` controls."""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import TYPE_CHECKING, Any

from tests.harness.aws_appconfig import (
    DEFAULT_POLL,
    AppConfig,
    AppConfigError,
    Environment,
    bad_request,
    moto_backend,
    new_id,
    not_found,
)
from tests.harness.aws_appconfig_data import poll, start_session
from tests.harness.aws_appconfig_deploy import start_deployment, stop_deployment
from tests.harness.aws_appconfig_plan import Strategy, validator_problem
from tests.harness.aws_routes import Routes

if TYPE_CHECKING:
    pass

_APP = r"/applications/(?P<app>[^/]+)"
_ENV = _APP + r"/environments/(?P<env>[^/]+)"
_PROFILE = _APP + r"/configurationprofiles/(?P<profile>[^/]+)"
# (method, path, operation, answered by moto, status the model names for a 2xx)
_ROUTES: list[tuple[str, re.Pattern[str], str, bool, int]] = [
    (m, re.compile(f"^{p}$"), op, moto, status)
    for m, p, op, moto, status in [
        ("POST", "/applications", "CreateApplication", True, 201),
        ("GET", "/applications", "ListApplications", False, 200),
        ("GET", _APP, "GetApplication", True, 200),
        ("PATCH", _APP, "UpdateApplication", True, 200),
        ("DELETE", _APP, "DeleteApplication", True, 204),
        ("POST", _APP + "/configurationprofiles", "CreateConfigurationProfile", True, 201),
        ("GET", _APP + "/configurationprofiles", "ListConfigurationProfiles", True, 200),
        ("GET", _PROFILE, "GetConfigurationProfile", True, 200),
        ("PATCH", _PROFILE, "UpdateConfigurationProfile", True, 200),
        ("DELETE", _PROFILE, "DeleteConfigurationProfile", True, 204),
        (
            "POST",
            _PROFILE + "/hostedconfigurationversions",
            "CreateHostedConfigurationVersion",
            True,
            201,
        ),
        (
            "GET",
            _PROFILE + r"/hostedconfigurationversions/(?P<version>[^/]+)",
            "GetHostedConfigurationVersion",
            True,
            200,
        ),
        (
            "DELETE",
            _PROFILE + r"/hostedconfigurationversions/(?P<version>[^/]+)",
            "DeleteHostedConfigurationVersion",
            True,
            204,
        ),
        ("GET", r"/tags/(?P<arn>.+)", "ListTagsForResource", True, 200),
        ("POST", r"/tags/(?P<arn>.+)", "TagResource", True, 204),
        ("DELETE", r"/tags/(?P<arn>.+)", "UntagResource", True, 204),
        ("POST", _APP + "/environments", "CreateEnvironment", False, 201),
        ("GET", _APP + "/environments", "ListEnvironments", False, 200),
        ("GET", _ENV, "GetEnvironment", False, 200),
        ("PATCH", _ENV, "UpdateEnvironment", False, 200),
        ("DELETE", _ENV, "DeleteEnvironment", False, 204),
        (
            "GET",
            _PROFILE + "/hostedconfigurationversions",
            "ListHostedConfigurationVersions",
            False,
            200,
        ),
        ("POST", "/deploymentstrategies", "CreateDeploymentStrategy", False, 201),
        ("GET", "/deploymentstrategies", "ListDeploymentStrategies", False, 200),
        ("GET", r"/deploymentstrategies/(?P<strategy>[^/]+)", "GetDeploymentStrategy", False, 200),
        ("POST", _ENV + "/deployments", "StartDeployment", False, 201),
        ("GET", _ENV + "/deployments", "ListDeployments", False, 200),
        ("GET", _ENV + r"/deployments/(?P<number>\d+)", "GetDeployment", False, 200),
        ("DELETE", _ENV + r"/deployments/(?P<number>\d+)", "StopDeployment", False, 202),
        ("POST", "/configurationsessions", "StartConfigurationSession", False, 201),
        ("GET", "/configuration", "GetLatestConfiguration", False, 200),
    ]
]
_DATA_OPERATIONS = frozenset({"StartConfigurationSession", "GetLatestConfiguration"})
_BY_NAME = {r[2]: r for r in _ROUTES}


def is_data_path(path: str) -> bool:
    """A Data API path (signed ``appconfig`` like the control plane)."""
    return path in ("/configurationsessions", "/configuration")


def appconfig_operation(method: str, path: str) -> tuple[str, dict[str, str]]:
    for m, rx, op, _, _ in _ROUTES:
        found = rx.match(path)
        if m == method and found:
            return op, {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
    return "Unknown", {}


class AppConfigRoutes(Routes):
    """Mixed into the emulator's handler: ``_appconfig`` answers one AppConfig request."""

    def _appconfig(
        self,
        service: str,
        region: str,
        operation: str,
        ids: dict[str, str],
        parsed: urllib.parse.SplitResult,
        body: bytes,
    ) -> None:
        ac = self.emulator.appconfig
        route = _BY_NAME.get(operation)
        try:
            if route is None:
                raise bad_request(f"the emulator has no AppConfig operation at {parsed.path}")
            if route[3]:
                self._appconfig_moto(operation, route[4], body)
                return
            with self.emulator._lock:
                answer = self._appconfig_answer(ac, region, operation, ids, parsed, body)
        except AppConfigError as e:
            self._error(service, e.status, e.code, e.message, e.extra)
            return
        if operation == "GetLatestConfiguration":
            data, headers = answer
            self._send(200, data, headers)
            return
        if route[4] == 204:
            self._send(204, b"", {})
            return
        self._json(route[4], answer)

    def _appconfig_moto(self, operation: str, status: int, body: bytes) -> None:
        """moto's answer, with the model's status code (and hosted versions' headers)."""
        if operation in ("CreateConfigurationProfile", "UpdateConfigurationProfile"):
            problem = validator_problem(json.loads(body or b"{}").get("Validators") or [])
            if problem is not None:
                raise bad_request(problem)
        self._forward(body, hold=True, status_as=status)
        held, self._held = self._held, None
        assert held is not None
        code, headers, data = held
        if operation.endswith("HostedConfigurationVersion") and 200 <= code < 300:
            headers = [(k, v) for k, v in headers if v != "None"]  # moto's absent members
        else:  # moto labels some JSON text/html
            headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
            headers.append(("Content-Type", "application/json"))
        if code >= 400:
            code = _ERROR_STATUS.get(_error_code(headers, data), code)
        elif operation == "ListConfigurationProfiles":
            data = json.dumps(_profile_summaries(json.loads(data))).encode()
        self._relay(code, headers, data)

    def _appconfig_answer(
        self,
        ac: AppConfig,
        region: str,
        operation: str,
        ids: dict[str, str],
        parsed: urllib.parse.SplitResult,
        body: bytes,
    ) -> Any:
        doc: dict[str, Any] = json.loads(body) if body.strip()[:1] == b"{" else {}
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        if operation == "StartConfigurationSession":
            return start_session(ac, region, doc)
        if operation == "GetLatestConfiguration":
            return poll(ac, query.get("configuration_token", ""))
        if operation == "CreateDeploymentStrategy":
            strategy = Strategy(
                new_id(),
                str(doc["Name"]),
                int(doc["DeploymentDurationInMinutes"]),
                float(doc["GrowthFactor"]),
                str(doc.get("GrowthType") or "LINEAR"),
                int(doc.get("FinalBakeTimeInMinutes") or 0),
                doc.get("Description"),
                str(doc.get("ReplicateTo") or "NONE"),
            )
            ac.state.strategies[(region, strategy.id)] = strategy
            return strategy.doc()
        if operation == "ListDeploymentStrategies":
            return _page([s.doc() for s in ac.strategies(region)], query)
        if operation == "GetDeploymentStrategy":
            return ac.strategy(region, ids["strategy"]).doc()
        if operation == "ListApplications":
            apps = moto_backend(region).applications.values()
            docs = [{k: v for k, v in a.to_json().items() if v is not None} for a in apps]
            return _page(docs, query)
        app_id = _application(region, ids["app"])
        if operation == "CreateEnvironment":
            env = Environment(
                region,
                app_id,
                new_id(),
                str(doc["Name"]),
                doc.get("Description"),
                [dict(m) for m in doc.get("Monitors") or []],
            )
            ac.state.environments[(region, env.id)] = env
            return ac.env_doc(env)
        if operation == "ListEnvironments":
            envs = [
                e
                for e in ac.state.environments.values()
                if (e.region, e.app_id) == (region, app_id)
            ]
            return _page([ac.env_doc(e) for e in envs], query)
        if operation == "ListHostedConfigurationVersions":
            return _page(_versions(region, app_id, ids["profile"], query), query)
        env = _environment(ac, region, app_id, ids["env"])
        if operation == "GetEnvironment":
            return ac.env_doc(env)
        if operation == "UpdateEnvironment":
            env.name = str(doc.get("Name") or env.name)
            if doc.get("Description") is not None:
                env.description = str(doc["Description"])
            if doc.get("Monitors") is not None:
                env.monitors = [dict(m) for m in doc["Monitors"]]
            return ac.env_doc(env)
        if operation == "StartDeployment":
            return start_deployment(ac, env, doc)
        deps = ac.state.deployments.get((region, app_id, env.id), [])
        ac.refresh_all()
        if operation == "DeleteEnvironment":
            if any(d.in_progress for d in deps):
                raise AppConfigError(
                    409, "ConflictException", f"{env.id} has a deployment in progress"
                )
            del ac.state.environments[(region, env.id)]
            ac.state.deployments.pop((region, app_id, env.id), None)
            return {}
        if operation == "ListDeployments":
            return _page([d.summary() for d in reversed(deps)], query)
        found = next((d for d in deps if d.number == int(ids["number"])), None)
        if found is None:
            raise not_found("Deployment", ids["number"])
        if operation == "GetDeployment":
            return found.doc()
        allow = str(self.headers.get("Allow-Revert", "")).lower() == "true"
        return stop_deployment(ac, found, allow)


def _versions(
    region: str, app_id: str, profile_ident: str, query: dict[str, str]
) -> list[dict[str, Any]]:
    """HostedConfigurationVersionSummary items of a profile (moto lists none)."""
    app = moto_backend(region).applications[app_id]
    profile = app.config_profiles.get(profile_ident)
    if profile is None:
        raise not_found("ConfigurationProfile", profile_ident)
    label = query.get("version_label")
    out = []
    for v in sorted(profile.config_versions.values(), key=lambda v: -int(v.version)):
        if label is not None and v.version_label != label:
            continue
        item = {
            "ApplicationId": app_id,
            "ConfigurationProfileId": profile.id,
            "VersionNumber": int(v.version),
            "ContentType": str(v.content_type),
        }
        item.update(
            {
                k: x
                for k, x in (("Description", v.description), ("VersionLabel", v.version_label))
                if x
            }
        )
        out.append(item)
    return out


def _page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    """One page of a list (``max_results``, default 50; ``next_token``: an opaque offset)."""
    token = query.get("next_token", "o0")
    if not token.startswith("o") or not token[1:].isdigit():
        raise bad_request("Invalid NextToken")
    start = int(token[1:])
    size = int(query.get("max_results", 50))
    out: dict[str, Any] = {"Items": items[start : start + size]}
    if start + size < len(items):
        out["NextToken"] = f"o{start + size}"
    return out


# moto answers every error 400; the status the model gives each
_ERROR_STATUS = {"ResourceNotFoundException": 404, "ConflictException": 409}


def _error_code(headers: list[tuple[str, str]], data: bytes) -> str:
    for k, v in headers:
        if k.lower() == "x-amzn-errortype":
            return v.split(":", 1)[0]
    try:
        return str(json.loads(data).get("__type", ""))
    except (ValueError, AttributeError):
        return ""


def _profile_summaries(doc: dict[str, Any]) -> dict[str, Any]:
    """moto lists whole profiles; AppConfig lists ConfigurationProfileSummary items."""
    items = []
    for p in doc.get("Items", []):
        item = {k: p[k] for k in ("ApplicationId", "Id", "Name", "LocationUri", "Type") if p.get(k)}
        item["ValidatorTypes"] = [v["Type"] for v in p.get("Validators") or []]
        items.append(item)
    return {"Items": items}


def _application(region: str, ident: str) -> str:
    if ident not in moto_backend(region).applications:
        raise not_found("Application", ident)
    return ident


def _environment(ac: AppConfig, region: str, app_id: str, ident: str) -> Environment:
    env = ac.state.environments.get((region, ident))
    if env is None or env.app_id != app_id:
        raise not_found("Environment", ident)
    return env


def appconfig_control(handler: Any, ac: AppConfig, name: str, body: bytes) -> None:
    """``/_emulator/appconfig/<name>``: POST hold {on, app, env, deployment_number}, step
    {app, env, deployment_number}, alarm {arn, state}, minute_seconds {seconds}, advance
    {seconds}, poll_interval {seconds}, refuse_early {on}; GET sessions, early_polls."""
    spec: dict[str, Any] = json.loads(body or b"{}") if handler.command == "POST" else {}
    number = spec.get("deployment_number")
    number = None if number is None else int(number)
    if name == "sessions" and handler.command == "GET":
        keys = ("session", "app", "env", "profile", "version", "last_poll")
        handler._json(200, {"sessions": [dict(zip(keys, s, strict=True)) for s in ac.sessions()]})
    elif name == "early_polls" and handler.command == "GET":
        handler._json(
            200, {"early_polls": [{"session": s, "seconds": t} for s, t in ac.early_polls()]}
        )
    elif name == "hold":
        ac.hold(bool(spec.get("on", True)), spec.get("app"), spec.get("env"), number)
        handler._json(200, {})
    elif name == "step":
        try:
            handler._json(200, ac.step(str(spec["app"]), str(spec["env"]), number))
        except KeyError as e:
            handler._json(404, {"message": str(e)})
    elif name == "alarm":
        ac.set_alarm(str(spec["arn"]), str(spec.get("state", "ALARM")))
        handler._json(200, {})
    elif name == "minute_seconds":
        ac.minute_seconds(float(spec["seconds"]))
        handler._json(200, {})
    elif name == "advance":
        ac.advance(float(spec["seconds"]))
        handler._json(200, {})
    elif name == "poll_interval":
        seconds = spec.get("seconds")
        ac.poll_interval(None if seconds is None else int(seconds))
        handler._json(200, {})
    elif name == "refuse_early":
        ac.refuse_early(bool(spec.get("on", True)))
        handler._json(200, {})
    else:
        handler._json(404, {"message": f"no control endpoint appconfig/{name!r}"})


__all__ = [
    "DEFAULT_POLL",
    "AppConfigRoutes",
    "appconfig_control",
    "appconfig_operation",
    "is_data_path",
]

"""An IMDSv2 stand-in: token PUT, instance identity, and rotating role credentials.

- ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds`` (1-21600)
  returns a token; every GET needs ``X-aws-ec2-metadata-token`` (401 otherwise).
- ``meta-data/instance-id``, ``placement/availability-zone``, ``placement/region``,
  ``instance-type``, ``ami-id``, ``dynamic/instance-identity/document``,
  ``meta-data/iam/security-credentials/`` and ``.../<role>`` (with ``Expiration``).
- ``delay`` (seconds) holds every answer that long (an IMDS slower than its clients' timeout).
- ``rotate()`` issues new keys; ``secret_for(access_key_id)`` knows every key ever issued
  (a SigV4-verifying server looks secrets up there) until it is revoked or, with
  ``reject_expired``, has expired.

Standalone: ``python -m tests.harness.imds --port P`` prints one JSON line and serves
until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.harness.aio import run_standalone
from tests.harness.lifecycle import StartStop

MAX_TTL = 21600


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    token: str
    expires_at: float  # time.time()

    @property
    def expiration(self) -> str:
        return dt.datetime.fromtimestamp(self.expires_at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ImdsServer(StartStop):
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        instance_id: str = "i-0123456789abcdef0",
        region: str = "eu-west-1",
        availability_zone: str | None = None,
        instance_type: str = "t3.micro",
        account_id: str = "123456789012",
        image_id: str = "ami-0abcdef1234567890",
        role: str | None = "ampd-writer",
        credential_lifetime: float = 6 * 3600,
        reject_expired: bool = False,
    ) -> None:
        self.host = host
        self._port = port
        self.instance_id = instance_id
        self.region = region
        self.availability_zone = availability_zone or f"{region}a"
        self.instance_type = instance_type
        self.account_id = account_id
        self.image_id = image_id
        self.role = role
        self.credential_lifetime = credential_lifetime
        self.reject_expired = reject_expired
        self.delay = 0.0
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._issued: dict[str, Credentials] = {}
        self._revoked: set[str] = set()
        self._current = self._new_credentials()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> ImdsServer:
        imds = self

        class Handler(_Handler):
            pass

        Handler.imds = imds
        server = ThreadingHTTPServer((self.host, self._port), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name="imds", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "not started"
        return f"http://{self.host}:{self._server.server_address[1]}"

    # -- credentials ----------------------------------------------------------------------

    def _new_credentials(self) -> Credentials:
        creds = Credentials(
            access_key_id="ASIA" + secrets.token_hex(8).upper(),
            secret_access_key=secrets.token_urlsafe(30),
            token=secrets.token_urlsafe(48),
            expires_at=time.time() + self.credential_lifetime,
        )
        self._issued[creds.access_key_id] = creds
        return creds

    @property
    def credentials(self) -> Credentials:
        with self._lock:
            return self._current

    def rotate(self, *, revoke_old: bool = False, lifetime: float | None = None) -> Credentials:
        """Issue new keys (what IMDS serves from now on)."""
        with self._lock:
            if lifetime is not None:
                self.credential_lifetime = lifetime
            old = self._current
            self._current = self._new_credentials()
            if revoke_old:
                self._revoked.add(old.access_key_id)
            return self._current

    def revoke(self, access_key_id: str) -> None:
        with self._lock:
            self._revoked.add(access_key_id)

    def secret_for(self, access_key_id: str) -> str | None:
        """The secret of an issued, still valid key; None for unknown/revoked/expired."""
        with self._lock:
            creds = self._issued.get(access_key_id)
            if creds is None or access_key_id in self._revoked:
                return None
            if self.reject_expired and creds.expires_at <= time.time():
                return None
            return creds.secret_access_key

    def session_token_for(self, access_key_id: str) -> str | None:
        with self._lock:
            creds = self._issued.get(access_key_id)
            return creds.token if creds else None

    def handed_out(self) -> dict[str, str]:
        """Every secret issued so far, named: session tokens, role secret keys and session
        tokens (for tests that search for them where they must not be)."""
        with self._lock:
            out = {f"imds token #{n}": t for n, t in enumerate(self._tokens)}
            for akid, c in self._issued.items():
                out[f"role secret key of {akid}"] = c.secret_access_key
                out[f"role session token of {akid}"] = c.token
        return out

    # -- tokens ---------------------------------------------------------------------------

    def _issue_token(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl
        return token

    def _token_ok(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def identity_document(self) -> dict[str, Any]:
        return {
            "accountId": self.account_id,
            "architecture": "x86_64",
            "availabilityZone": self.availability_zone,
            "imageId": self.image_id,
            "instanceId": self.instance_id,
            "instanceType": self.instance_type,
            "pendingTime": "2024-01-01T00:00:00Z",
            "privateIp": "10.0.0.10",
            "region": self.region,
            "version": "2017-09-30",
        }

    def _get(self, path: str) -> tuple[int, str, str]:
        """(status, content type, body) for a GET under /latest/."""
        plain = "text/plain"
        meta = {
            "meta-data/instance-id": self.instance_id,
            "meta-data/placement/availability-zone": self.availability_zone,
            "meta-data/placement/region": self.region,
            "meta-data/instance-type": self.instance_type,
            "meta-data/ami-id": self.image_id,
        }
        if path in meta:
            return 200, plain, meta[path]
        if path == "dynamic/instance-identity/document":
            return 200, "application/json", json.dumps(self.identity_document(), indent=2)
        if path == "meta-data/iam/security-credentials/" and self.role:
            return 200, plain, self.role
        if self.role and path == f"meta-data/iam/security-credentials/{self.role}":
            c = self.credentials
            doc = {
                "Code": "Success",
                "LastUpdated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "Type": "AWS-HMAC",
                "AccessKeyId": c.access_key_id,
                "SecretAccessKey": c.secret_access_key,
                "Token": c.token,
                "Expiration": c.expiration,
            }
            return 200, "application/json", json.dumps(doc, indent=2)
        return 404, plain, "Not Found"


class _Handler(BaseHTTPRequestHandler):
    imds: ImdsServer
    protocol_version = "HTTP/1.1"
    server_version = "EC2ws"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: str, ctype: str = "text/plain", **headers: str) -> None:
        data = body.encode()
        self.imds.requests.append((self.command, self.path, status))  # before the answer
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        if self.imds.delay:
            time.sleep(self.imds.delay)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path != "/latest/api/token":
            self._send(404, "Not Found")
            return
        if self.headers.get("X-Forwarded-For"):
            self._send(403, "Forbidden")
            return
        raw = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_TTL:
            self._send(400, "Bad Request")
            return
        token = self.imds._issue_token(int(raw))
        self._send(200, token, x_aws_ec2_metadata_token_ttl_seconds=raw)

    def do_GET(self) -> None:
        if self.imds.delay:
            time.sleep(self.imds.delay)
        if not self.path.startswith("/latest/"):
            self._send(404, "Not Found")
            return
        if not self.imds._token_ok(self.headers.get("X-aws-ec2-metadata-token")):
            self._send(401, "Unauthorized")
            return
        status, ctype, body = self.imds._get(self.path.removeprefix("/latest/"))
        self._send(status, body, ctype)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="IMDSv2 stand-in")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--region", default="eu-west-1")
    parser.add_argument("--instance-id", default="i-0123456789abcdef0")
    parser.add_argument("--role", default="ampd-writer")
    args = parser.parse_args(argv)
    server = ImdsServer(
        host=args.host,
        port=args.port,
        region=args.region,
        instance_id=args.instance_id,
        role=args.role or None,
    )

    def start() -> dict[str, Any]:
        server.start()
        return {"endpoint": server.endpoint, "region": server.region, "pid": os.getpid()}

    return run_standalone(start, server.stop)


if __name__ == "__main__":
    raise SystemExit(main())

"""Fixtures for the SSO tests.

* ``crafted_provider``: an OpenID provider on loopback whose ID tokens the test writes, signed
  by keys the test controls and served from a real JWKS endpoint, for the refusal cases
  (wrong issuer, wrong audience, expiry, nonce, ``alg: none``, another key).
* ``oidc_provider``: the real npm ``oidc-provider`` from ``infra/oidc-provider`` (installed
  with ``npm ci`` from the lockfile when ``node_modules`` is missing), on a free loopback port.

Test modules import what they use: ``from tests.platform.sso_fixtures import ...``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.conftest import CI

ROOT = Path(__file__).resolve().parents[2]
OIDC_DIR = ROOT / "infra" / "oidc-provider"
CLIENT_ID = "attendwise-test"
CLIENT_SECRET = "test-client-secret-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class CraftedProvider:
    """Serves discovery, JWKS and a token endpoint that returns the ID token the test sets."""

    url: str
    key: RSAKey
    other_key: RSAKey
    next_id_token: Callable[[dict[str, Any]], str] | None = None
    token_requests: list[dict[str, str]] = field(default_factory=list)
    code_challenges: dict[str, str] = field(default_factory=dict)

    @property
    def discovery_url(self) -> str:
        return self.url + "/.well-known/openid-configuration"

    def claims(self, nonce: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "iss": self.url,
            "sub": "subject-123",
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "email": "sam@school.test",
            "email_verified": True,
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def sign(self, claims: dict[str, Any], key: RSAKey | None = None) -> str:
        signer = key or self.key
        return jwt.encode({"alg": "RS256", "kid": signer.kid}, claims, signer)

    @staticmethod
    def unsigned(claims: dict[str, Any]) -> str:
        header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        return f"{header}.{b64url(json.dumps(claims).encode())}."

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.path == "/.well-known/openid-configuration":
            body: dict[str, Any] = {
                "issuer": self.url,
                "authorization_endpoint": self.url + "/authorize",
                "token_endpoint": self.url + "/token",
                "jwks_uri": self.url + "/jwks",
                "end_session_endpoint": self.url + "/logout",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256", "none"],
                "code_challenge_methods_supported": ["S256"],
            }
        elif request.path == "/jwks":
            body = {"keys": [self.key.as_dict(private=False)]}
        elif request.path == "/token":
            form = request.form.to_dict()
            self.token_requests.append(form)
            verifier = form.get("code_verifier", "")
            challenge = b64url(hashlib.sha256(verifier.encode()).digest())
            if self.code_challenges.get(form.get("code", "")) != challenge or self.next_id_token is None:
                response = Response(json.dumps({"error": "invalid_grant"}), 400, mimetype="application/json")
                return response(environ, start_response)
            body = {
                "access_token": "at-" + form["code"],
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.next_id_token(form),
            }
        else:
            return Response("not found", 404)(environ, start_response)
        return Response(json.dumps(body), mimetype="application/json")(environ, start_response)


@pytest.fixture
def crafted_provider() -> Iterator[CraftedProvider]:
    port = free_port()
    provider = CraftedProvider(
        url=f"http://127.0.0.1:{port}",
        key=RSAKey.generate_key(2048, parameters={"kid": "good-key", "use": "sig", "alg": "RS256"}),
        other_key=RSAKey.generate_key(2048, parameters={"kid": "good-key", "use": "sig", "alg": "RS256"}),
    )
    server = make_server("127.0.0.1", port, provider.wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        thread.join(timeout=5)


def authorize_params(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class RealProvider:
    issuer: str
    users: dict[str, dict[str, str]]

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"


def ensure_node_modules() -> None:
    """``npm ci`` from the committed lockfile when node_modules is missing; no npm fails in CI."""
    if (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        if CI:
            pytest.fail("npm is needed to install the test OpenID provider (infra/oidc-provider)")
        pytest.skip("npm is not installed; the real OpenID provider cannot be installed")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=OIDC_DIR, check=True, capture_output=True, timeout=300
    )


def start_real_provider(redirect_uri: str, post_logout_uri: str, users: dict[str, dict[str, str]]) -> Any:
    """Start infra/oidc-provider/server.mjs; returns (process, RealProvider) once it listens."""
    ensure_node_modules()
    node = shutil.which("node")
    if node is None:
        if CI:
            pytest.fail("node is needed to run the test OpenID provider")
        pytest.skip("node is not installed")
    port = free_port()
    env = os.environ | {
        "OIDC_PORT": str(port),
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_REDIRECT_URI": redirect_uri,
        "OIDC_POST_LOGOUT_URI": post_logout_uri,
        "OIDC_USERS": json.dumps(users),
    }
    # The provider's output goes to a file, not a pipe: nothing is left reading a pipe that
    # teardown would have to close under a running thread.
    log = tempfile.NamedTemporaryFile(prefix="oidc-provider-", suffix=".log", delete=False)  # noqa: SIM115
    log.close()
    with open(log.name, "w") as out:
        process = subprocess.Popen(
            [node, "server.mjs"], cwd=OIDC_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        for line in Path(log.name).read_text().splitlines():
            if line.startswith("listening "):
                return process, RealProvider(issuer=line.split()[1], users=users)
        time.sleep(0.1)
    stop_real_provider(process)
    pytest.fail("the test OpenID provider did not start:\n" + Path(log.name).read_text())


def stop_real_provider(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)

"""A real OAuth2 token endpoint for tests, and an SMTP server that accepts XOAUTH2 only with a
token that endpoint issued and still honours.

:class:`OAuthProvider` is the endpoint's state and logic; it answers through
``http_servers.http_server`` (a real HTTP server in a thread, TLS with the test CA):

- ``POST /<tenant>/oauth2/v2.0/token`` (Microsoft's shape, also used as a generic endpoint):
  ``client_credentials`` (a wrong secret is refused with AADSTS7000215, as Entra ID does),
  ``refresh_token`` (strict rotation: a used refresh token is spent) and the device-code grant
  (``authorization_pending`` on the first poll, then granted);
- ``POST /<tenant>/oauth2/v2.0/devicecode``;
- ``POST /google/token``: the JWT bearer grant (RFC 7523). The assertion's RS256 signature is
  verified with the test service account's public key, and ``iss``, ``sub``, ``aud``,
  ``scope``, ``iat`` and ``exp`` are checked.

Tokens can be revoked (:meth:`OAuthProvider.revoke`), or issued already refused
(``refuse_new``). :func:`xoauth2_server` runs aiosmtpd with an ``auth_XOAUTH2`` mechanism that
asks the provider whether a token is valid now, for the user it names; refused logins answer
``535 5.7.3`` (Microsoft) or, with ``gmail=True``, Gmail's 334 challenge carrying a base64
JSON error, then ``535 5.7.8`` after the client's empty line.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from http_servers import Captured, HttpServer, Reply, http_server, reply
from smtp_servers import Handler, Server, ServerController, free_port

CLIENT_ID = "0b5c5d4e-0000-4000-8000-00000000c1d0"
CLIENT_SECRET = "Xq8~client.secret-VALUE-0123456789abcdef"
SERVICE_ACCOUNT = "postroom-mailer@example-project.iam.gserviceaccount.com"
GOOGLE_SCOPE = "https://mail.google.com/"
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
DELEGATED_SCOPE = "https://outlook.office.com/SMTP.Send offline_access"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Issued:
    """An access token the endpoint gave out."""

    token: str
    subject: str | None
    expires_at: float  # time.time()
    revoked: bool = False


@dataclass
class TokenRequest:
    """One request the endpoint received, as a test wants to see it."""

    path: str
    grant_type: str
    form: dict[str, str]


@dataclass
class OAuthProvider:
    """The token endpoint's state. Call it with a captured request to get the answer."""

    lifetime: int = 3600
    subjects: tuple[str, ...] = ("sender@example.org",)
    refuse_new: bool = False
    decline_device: bool = False
    # What the device code endpoint says (a test makes it hostile).
    user_code: str = "PSTRM-42"
    verification_uri: str = "https://microsoft.com/devicelogin"
    decline_description: str = "AADSTS70019: declined"
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    base_url: str = ""
    requests: list[TokenRequest] = field(default_factory=list)
    issued: list[Issued] = field(default_factory=list)
    refresh_tokens: dict[str, bool] = field(default_factory=dict)  # token -> still valid
    device_polls: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what tests use ------------------------------------------------------------------

    def token_url(self, tenant: str = "contoso") -> str:
        return f"{self.base_url}/{tenant}/oauth2/v2.0/token"

    @property
    def google_token_uri(self) -> str:
        return f"{self.base_url}/google/token"

    def service_account(self, *, key: rsa.RSAPrivateKey | None = None) -> dict[str, Any]:
        """A Google service account key file (JSON) for this endpoint."""
        pem = (key or self.key).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return {
            "type": "service_account",
            "project_id": "example-project",
            "private_key_id": "0123456789abcdef",
            "private_key": pem.decode(),
            "client_email": SERVICE_ACCOUNT,
            "client_id": "109876543210987654321",
            "token_uri": self.google_token_uri,
        }

    def grants(self, grant_type: str | None = None) -> list[TokenRequest]:
        with self.lock:
            return [r for r in self.requests if grant_type is None or r.grant_type == grant_type]

    def revoke(self, token: str | None = None) -> None:
        """Revoke one access token (every one when None)."""
        with self.lock:
            for issued in self.issued:
                if token is None or issued.token == token:
                    issued.revoked = True

    def valid(self, token: str, user: str) -> bool:
        """Whether ``token`` was issued here, is neither expired nor revoked, and may act as
        ``user``."""
        with self.lock:
            for issued in self.issued:
                if issued.token == token:
                    return (
                        not issued.revoked
                        and time.time() < issued.expires_at
                        and (issued.subject is None or issued.subject == user)
                    )
        return False

    def secrets_seen(self) -> list[str]:
        """Every token this endpoint handed out (access and refresh)."""
        with self.lock:
            return [i.token for i in self.issued] + list(self.refresh_tokens)

    # -- the endpoint ----------------------------------------------------------------------

    def __call__(self, captured: Captured, _index: int) -> Reply:
        form = {k: v[-1] for k, v in captured.form().items()}
        grant = form.get("grant_type", "")
        with self.lock:
            self.requests.append(TokenRequest(captured.path, grant, form))
        if captured.path.endswith("/devicecode"):
            return self._device_code(form)
        if captured.path == "/google/token":
            return self._jwt_bearer(form)
        if not captured.path.endswith("/oauth2/v2.0/token"):
            return reply(404, "<html>not found</html>")
        if grant == "client_credentials":
            return self._client_credentials(form)
        if grant == "refresh_token":
            return self._refresh(form)
        if grant == DEVICE_GRANT:
            return self._device_poll(form)
        return self._error(400, "unsupported_grant_type", "AADSTS70003: unsupported grant")

    def _error(self, status: int, error: str, description: str) -> Reply:
        trace = " Trace ID: 0000-trace Correlation ID: 1111-corr Timestamp: 2025-01-01 00:00:00Z"
        return reply(status, {"error": error, "error_description": description + trace})

    def _grant(self, subject: str | None, *, refresh: bool = False) -> Reply:
        token = "at-" + secrets.token_urlsafe(24)
        with self.lock:
            self.issued.append(
                Issued(token, subject, time.time() + self.lifetime, revoked=self.refuse_new)
            )
            body: dict[str, Any] = {
                "token_type": "Bearer",
                "expires_in": self.lifetime,
                "access_token": token,
            }
            if refresh:
                rt = "rt-" + secrets.token_urlsafe(24)
                self.refresh_tokens[rt] = True
                body["refresh_token"] = rt
        return reply(200, body)

    def _client_credentials(self, form: dict[str, str]) -> Reply:
        if form.get("client_id") != CLIENT_ID:
            return self._error(
                400, "unauthorized_client", "AADSTS700016: Application with identifier not found"
            )
        if form.get("client_secret") != CLIENT_SECRET:
            return self._error(
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in "
                "the request is the client secret value, not the client secret ID.",
            )
        if form.get("scope") != MICROSOFT_SCOPE:
            return self._error(400, "invalid_scope", "AADSTS1002012: The provided value for scope")
        return self._grant(None)

    def _refresh(self, form: dict[str, str]) -> Reply:
        rt = form.get("refresh_token", "")
        with self.lock:
            known = self.refresh_tokens.get(rt, False)
            if known:
                self.refresh_tokens[rt] = False  # rotation: a refresh token is used once
        if not known or form.get("client_id") != CLIENT_ID:
            return self._error(
                400, "invalid_grant", "AADSTS70008: The refresh token has expired or is revoked"
            )
        return self._grant(self.subjects[0], refresh=True)

    def _device_code(self, form: dict[str, str]) -> Reply:
        if form.get("client_id") != CLIENT_ID or form.get("scope") != DELEGATED_SCOPE:
            return self._error(400, "invalid_request", "AADSTS900144: bad device code request")
        code = "dc-" + secrets.token_urlsafe(16)
        with self.lock:
            self.device_polls[code] = 0
        return reply(
            200,
            {
                "device_code": code,
                "user_code": self.user_code,
                "verification_uri": self.verification_uri,
                "expires_in": 900,
                "interval": 1,
                "message": "To sign in, use a web browser ...",
            },
        )

    def _device_poll(self, form: dict[str, str]) -> Reply:
        code = form.get("device_code", "")
        with self.lock:
            if code not in self.device_polls:
                polls = -1
            else:
                self.device_polls[code] += 1
                polls = self.device_polls[code]
        if polls < 0:
            return self._error(400, "expired_token", "AADSTS70020: The provided value expired")
        if polls == 1:
            return self._error(400, "authorization_pending", "AADSTS70016: pending")
        if self.decline_device:
            return self._error(400, "authorization_declined", self.decline_description)
        return self._grant(self.subjects[0], refresh=True)

    def _jwt_bearer(self, form: dict[str, str]) -> Reply:
        if form.get("grant_type") != JWT_BEARER:
            return reply(400, {"error": "unsupported_grant_type"})
        try:
            head_b64, claims_b64, sig_b64 = form["assertion"].split(".")
            header = json.loads(_b64url_decode(head_b64))
            claims = json.loads(_b64url_decode(claims_b64))
            signature = _b64url_decode(sig_b64)
        except (KeyError, ValueError):
            return reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT."})
        if header.get("alg") != "RS256":
            return reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT."})
        try:
            self.key.public_key().verify(
                signature,
                f"{head_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return reply(
                400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            )
        now = time.time()
        if (
            claims.get("iss") != SERVICE_ACCOUNT
            or claims.get("aud") != self.google_token_uri
            or not isinstance(claims.get("iat"), int)
            or not isinstance(claims.get("exp"), int)
            or not claims["iat"] - 300 <= now <= claims["exp"]
            or claims["exp"] - claims["iat"] > 3600
        ):
            return reply(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "Invalid JWT: Token must be a short-lived token (60 "
                    "minutes) and in a reasonable timeframe. Check your iat and exp values.",
                },
            )
        if claims.get("sub") not in self.subjects:
            return reply(
                400, {"error": "invalid_grant", "error_description": "Invalid email or User ID"}
            )
        if claims.get("scope") != GOOGLE_SCOPE:
            return reply(
                401,
                {
                    "error": "unauthorized_client",
                    "error_description": "Client is unauthorized to retrieve access tokens "
                    "using this method, or client not authorized for any of the scopes "
                    "requested.",
                },
            )
        return self._grant(str(claims["sub"]))


@contextmanager
def oauth_endpoint(
    tls: ssl.SSLContext, **options: Any
) -> Iterator[tuple[OAuthProvider, HttpServer]]:
    """Run an :class:`OAuthProvider` over HTTPS on 127.0.0.1."""
    provider = OAuthProvider(**options)
    with http_server(provider, tls=tls) as server:
        provider.base_url = server.base("").rstrip("/")
        yield provider, server


@dataclass
class Login:
    """One XOAUTH2 login the SMTP server saw."""

    user: str
    ok: bool
    challenged: bool = False
    answer: bytes | None = None  # what the client answered to a 334 challenge


class XOAuth2Handler(Handler):
    """Handler with an ``auth_XOAUTH2`` mechanism backed by an :class:`OAuthProvider`."""

    def __init__(self, provider: OAuthProvider, *, gmail: bool = False) -> None:
        super().__init__()
        self.provider = provider
        self.gmail = gmail
        self.xoauth2: list[Login] = []

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) < 2:
            await server.push("501 5.5.2 XOAUTH2 wants its initial response")
            return AuthResult(success=False, handled=True)
        try:
            text = base64.b64decode(args[1], validate=True).decode()
            fields = dict(part.split("=", 1) for part in text.split("\x01") if part)
            user, bearer = fields["user"], fields["auth"]
        except (ValueError, KeyError):
            await server.push("501 5.5.2 Cannot decode XOAUTH2 response")
            return AuthResult(success=False, handled=True)
        token = bearer.removeprefix("Bearer ")
        ok = bearer.startswith("Bearer ") and self.provider.valid(token, user)
        login = Login(user, ok)
        self.xoauth2.append(login)
        if ok:
            return AuthResult(success=True, auth_data=user)
        if self.gmail:
            error = {"status": "400", "schemes": "Bearer", "scope": GOOGLE_SCOPE}
            login.challenged = True
            answer = await server.challenge_auth(json.dumps(error).encode())
            login.answer = answer if isinstance(answer, bytes) else None
            return AuthResult(
                success=False,
                handled=False,
                message="535-5.7.8 Username and Password not accepted. For more information, "
                "go to\r\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials - gsmtp",
            )
        return AuthResult(
            success=False,
            handled=False,
            message="535 5.7.3 Authentication unsuccessful [AM0PR01CA0001.eurprd01.outlook.com]",
        )


@contextmanager
def xoauth2_server(
    provider: OAuthProvider,
    *,
    tls: ssl.SSLContext,
    gmail: bool = False,
    idle_timeout: float | None = None,
) -> Iterator[Server]:
    """An aiosmtpd server on 127.0.0.1 that requires STARTTLS and an XOAUTH2 login."""
    handler = XOAuth2Handler(provider, gmail=gmail)
    kwargs: dict[str, Any] = {
        "tls_context": tls,
        "require_starttls": True,
        "auth_required": True,
        "auth_require_tls": True,
        "auth_exclude_mechanism": ["PLAIN", "LOGIN"],
    }
    if idle_timeout is not None:
        kwargs["timeout"] = idle_timeout
    port = free_port()
    controller = ServerController(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield Server("127.0.0.1", port, handler)
    finally:
        controller.stop()

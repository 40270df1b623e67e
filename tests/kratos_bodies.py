"""What Ory Kratos posts to an HTTP courier, built the way Kratos builds it: each Jsonnet body
below is quoted exactly from its source and evaluated with a real Jsonnet evaluator on the
context Kratos hands it (``courier/http_channel.go``'s ``httpDataModel``).

Sources:

- ``KRATOS_DEFAULT_BODY``: the ``default`` of ``courier.http.request_config.body`` in Ory
  Kratos's ``embedx/config.schema.json`` (https://github.com/ory/kratos), for Kratos versions
  whose ``httpDataModel`` has JSON tags (``recipient``, ``template_data``...). The nine keys:
  no ``login_code``, no ``registration_code``, and Kratos's rendered ``subject`` and ``body``.
- ``KRATOS_DEFAULT_BODY_CAPITALISED``: the same ``default`` in that file at commit
  00cf11c071344103c603c078f07196401d091780, for Kratos versions whose context keys were the Go
  field names (``Recipient``, ``TemplateData.LoginCode``...). The same nine keys come out.
- ``ORY_DOCS_BODY``: the eleven-key body of Ory's documentation page "HTTP based email
  delivery" (https://www.ory.sh/docs/kratos/self-hosted/email-http).
- ``CUSTOM_BODIES``: bodies an operator writes that pass Kratos's context on.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import _jsonnet

KRATOS_DEFAULT_BODY = (
    "base64://ZnVuY3Rpb24oY3R4KSB7CiAgcmVjaXBpZW50OiBjdHgucmVjaXBpZW50LAogIHRlbXBsYXRlX3R5cGU6"
    "IGN0eC50ZW1wbGF0ZV90eXBlLAogIHRvOiBpZiAidGVtcGxhdGVfZGF0YSIgaW4gY3R4ICYmICJ0byIgaW4gY3R4"
    "LnRlbXBsYXRlX2RhdGEgdGhlbiBjdHgudGVtcGxhdGVfZGF0YS50byBlbHNlIG51bGwsCiAgcmVjb3ZlcnlfY29k"
    "ZTogaWYgInRlbXBsYXRlX2RhdGEiIGluIGN0eCAmJiAicmVjb3ZlcnlfY29kZSIgaW4gY3R4LnRlbXBsYXRlX2Rh"
    "dGEgdGhlbiBjdHgudGVtcGxhdGVfZGF0YS5yZWNvdmVyeV9jb2RlIGVsc2UgbnVsbCwKICByZWNvdmVyeV91cmw6"
    "IGlmICJ0ZW1wbGF0ZV9kYXRhIiBpbiBjdHggJiYgInJlY292ZXJ5X3VybCIgaW4gY3R4LnRlbXBsYXRlX2RhdGEg"
    "dGhlbiBjdHgudGVtcGxhdGVfZGF0YS5yZWNvdmVyeV91cmwgZWxzZSBudWxsLAogIHZlcmlmaWNhdGlvbl91cmw6"
    "IGlmICJ0ZW1wbGF0ZV9kYXRhIiBpbiBjdHggJiYgInZlcmlmaWNhdGlvbl91cmwiIGluIGN0eC50ZW1wbGF0ZV9k"
    "YXRhIHRoZW4gY3R4LnRlbXBsYXRlX2RhdGEudmVyaWZpY2F0aW9uX3VybCBlbHNlIG51bGwsCiAgdmVyaWZpY2F0"
    "aW9uX2NvZGU6IGlmICJ0ZW1wbGF0ZV9kYXRhIiBpbiBjdHggJiYgInZlcmlmaWNhdGlvbl9jb2RlIiBpbiBjdHgu"
    "dGVtcGxhdGVfZGF0YSB0aGVuIGN0eC50ZW1wbGF0ZV9kYXRhLnZlcmlmaWNhdGlvbl9jb2RlIGVsc2UgbnVsbCwK"
    "ICBzdWJqZWN0OiBjdHguc3ViamVjdCwKICBib2R5OiBjdHguYm9keQp9Cg=="
)

KRATOS_DEFAULT_BODY_CAPITALISED = (
    "base64://ZnVuY3Rpb24oY3R4KSB7CiAgcmVjaXBpZW50OiBjdHguUmVjaXBpZW50LAogIHRlbXBsYXRlX3R5cGU6"
    "IGN0eC5UZW1wbGF0ZVR5cGUsCiAgdG86IGlmICJUZW1wbGF0ZURhdGEiIGluIGN0eCAmJiAiVG8iIGluIGN0eC5U"
    "ZW1wbGF0ZURhdGEgdGhlbiBjdHguVGVtcGxhdGVEYXRhLlRvIGVsc2UgbnVsbCwKICByZWNvdmVyeV9jb2RlOiBp"
    "ZiAiVGVtcGxhdGVEYXRhIiBpbiBjdHggJiYgIlJlY292ZXJ5Q29kZSIgaW4gY3R4LlRlbXBsYXRlRGF0YSB0aGVu"
    "IGN0eC5UZW1wbGF0ZURhdGEuUmVjb3ZlcnlDb2RlIGVsc2UgbnVsbCwKICByZWNvdmVyeV91cmw6IGlmICJUZW1w"
    "bGF0ZURhdGEiIGluIGN0eCAmJiAiUmVjb3ZlcnlVUkwiIGluIGN0eC5UZW1wbGF0ZURhdGEgdGhlbiBjdHguVGVt"
    "cGxhdGVEYXRhLlJlY292ZXJ5VVJMIGVsc2UgbnVsbCwKICB2ZXJpZmljYXRpb25fdXJsOiBpZiAiVGVtcGxhdGVE"
    "YXRhIiBpbiBjdHggJiYgIlZlcmlmaWNhdGlvblVSTCIgaW4gY3R4LlRlbXBsYXRlRGF0YSB0aGVuIGN0eC5UZW1w"
    "bGF0ZURhdGEuVmVyaWZpY2F0aW9uVVJMIGVsc2UgbnVsbCwKICB2ZXJpZmljYXRpb25fY29kZTogaWYgIlRlbXBs"
    "YXRlRGF0YSIgaW4gY3R4ICYmICJWZXJpZmljYXRpb25Db2RlIiBpbiBjdHguVGVtcGxhdGVEYXRhIHRoZW4gY3R4"
    "LlRlbXBsYXRlRGF0YS5WZXJpZmljYXRpb25Db2RlIGVsc2UgbnVsbCwKICBzdWJqZWN0OiBjdHguU3ViamVjdCwK"
    "ICBib2R5OiBjdHguQm9keQp9Cg=="
)

ORY_DOCS_BODY = """\
function(ctx) {
  recipient: ctx.recipient,
  template_type: ctx.template_type,
  to: if "template_data" in ctx && "to" in ctx.template_data then ctx.template_data.to else null,
  recovery_code: if "template_data" in ctx && "recovery_code" in ctx.template_data then ctx.template_data.recovery_code else null,
  recovery_url: if "template_data" in ctx && "recovery_url" in ctx.template_data then ctx.template_data.recovery_url else null,
  verification_url: if "template_data" in ctx && "verification_url" in ctx.template_data then ctx.template_data.verification_url else null,
  verification_code: if "template_data" in ctx && "verification_code" in ctx.template_data then ctx.template_data.verification_code else null,
  login_code: if "template_data" in ctx && "login_code" in ctx.template_data then ctx.template_data.login_code else null,
  registration_code: if "template_data" in ctx && "registration_code" in ctx.template_data then ctx.template_data.registration_code else null,
  subject: if "template_data" in ctx && "subject" in ctx.template_data then ctx.template_data.subject else null,
  body: if "template_data" in ctx && "body" in ctx.template_data then ctx.template_data.body else null,
}
"""  # noqa: E501 - quoted as Ory's page shows it, independently of Postroom's own copy

CUSTOM_BODIES = {
    # The whole context passed on.
    "whole-context": "function(ctx) ctx",
    # The usual hand-written one: the template data nested, Kratos's text beside it.
    "nested": """function(ctx) {
  recipient: ctx.recipient,
  template_type: ctx.template_type,
  template_data: ctx.template_data,
  subject: ctx.subject,
  body: ctx.body,
}""",
    # Nested data only, no Kratos text: Postroom's templates must carry the message.
    "data-only": """function(ctx) {
  recipient: ctx.recipient,
  template_type: ctx.template_type,
  template_data: ctx.template_data,
}""",
}

ELEVEN = {
    "recipient",
    "template_type",
    "to",
    "recovery_code",
    "recovery_url",
    "verification_url",
    "verification_code",
    "login_code",
    "registration_code",
    "subject",
    "body",
}
"""The keys of Ory's documented body (and of Postroom's own default HTTP body)."""
NINE = ELEVEN - {"login_code", "registration_code"}
"""The keys of the Kratos binary's default body."""

# Kratos's messages: the template model (JSON tags of courier/template/email/*.go) and a
# subject and plain text as Kratos renders them.
MESSAGES: dict[str, dict[str, Any]] = {
    "login_code_valid": {
        "data": {"login_code": "482913", "request_url": "https://id.example.org/login"},
        "subject": "Login to your account",
        "body": "Login to your account with the following code:\n\n482913\n",
    },
    "registration_code_valid": {
        "data": {"registration_code": "730154", "traits": {"email": "x"}},
        "subject": "Complete your account registration",
        "body": "Complete your account registration with the following code:\n\n730154\n",
    },
    "verification_code_valid": {
        "data": {
            "verification_code": "615208",
            "verification_url": "https://id.example.org/verify?flow=f1&code=615208",
        },
        "subject": "Please verify your email address",
        "body": "Please verify your account by entering the following code:\n\n615208\n",
    },
    "recovery_code_valid": {
        "data": {"recovery_code": "904417"},
        "subject": "Recover access to your account",
        "body": "Please recover access to your account by entering the following code:\n\n904417\n",
    },
}
CODES = {kind: next(iter(m["data"].values())) for kind, m in MESSAGES.items()}


def kratos_ctx(kind: str, recipient: str, *, capitalised: bool = False) -> dict[str, Any]:
    """The context Kratos's HTTP channel gives a body for one of :data:`MESSAGES`."""
    message = MESSAGES[kind]
    data = {"to": recipient, "identity": {"id": "5b2d2e0e"}, **message["data"]}
    if capitalised:  # Go field names: To, LoginCode, RecoveryURL...
        names = {"url": "URL", "to": "To"}
        data = {
            "".join(names.get(p, p.capitalize()) for p in key.split("_")): value
            for key, value in data.items()
        }
        return {
            "Recipient": recipient,
            "Subject": message["subject"],
            "Body": message["body"],
            "TemplateType": kind,
            "TemplateData": data,
            "MessageType": "email",
        }
    return {
        "recipient": recipient,
        "subject": message["subject"],
        "body": message["body"],
        "html_body": f"<p>{message['body']}</p>",
        "template_type": kind,
        "template_data": data,
        "message_type": "email",
    }


def source(body: str) -> str:
    """The Jsonnet text of a ``base64://`` body, or the body itself."""
    if body.startswith("base64://"):
        return base64.b64decode(body.removeprefix("base64://")).decode()
    return body


def evaluate(body: str, ctx: dict[str, Any]) -> dict[str, Any]:
    """What Kratos posts: ``body`` evaluated with ``ctx`` as its one argument."""
    out: dict[str, Any] = json.loads(
        _jsonnet.evaluate_snippet("body.jsonnet", source(body), tla_codes={"ctx": json.dumps(ctx)})
    )
    return out

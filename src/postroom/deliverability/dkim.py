"""DKIM signing (RFC 6376, and RFC 8463 for Ed25519) with ``cryptography``.

:func:`sign_message` is the one entry point: a tenant's signing key and the final MIME bytes in,
the same bytes with a ``DKIM-Signature`` header on top out. Canonicalisation is relaxed/relaxed;
``h=`` lists From (twice: an added From header breaks the signature), To, Subject, Date,
Message-ID, Reply-To (even when absent, so that none can be added) and the MIME headers present.
Keys are made by :func:`generate_key` and published with :func:`txt_record`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from postroom.errors import ConfigError

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]
ALGORITHMS: tuple[Algorithm, ...] = ("rsa-sha256", "ed25519-sha256")
RSA_BITS = 2048
# The headers signed, in this order; each present instance is signed, From once more.
SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
)
ALWAYS_SIGNED = ("from", "reply-to")  # listed once more than present: none may be added

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A loaded private key with where it is published: ``selector._domainkey.domain``."""

    domain: str
    selector: str
    algorithm: Algorithm
    key: PrivateKey

    @property
    def public_value(self) -> str:
        """The ``p=`` value of the key's DNS record."""
        return public_value(self.key)


def generate_key(algorithm: Algorithm) -> PrivateKey:
    """A new private key: RSA of 2048 bits, or Ed25519."""
    if algorithm == "ed25519-sha256":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


def private_pem(key: PrivateKey) -> str:
    """The key as unencrypted PKCS#8 PEM (encrypt it before it is stored)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def load_private_key(pem: bytes, *, algorithm: Algorithm, source: str) -> PrivateKey:
    """Read a PEM private key of ``algorithm``; raise :class:`ConfigError` naming ``source``."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(
            f"is not an unencrypted PEM private key ({exc}); make one with "
            "`postroom dkim generate` or `openssl genpkey -algorithm RSA -pkeyopt "
            "rsa_keygen_bits:2048`",
            path=source,
        ) from None
    if algorithm == "rsa-sha256" and isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            raise ConfigError(
                f"is an RSA key of {key.key_size} bits; receivers ignore DKIM keys under 1024 "
                "bits: make one of 2048",
                path=source,
            )
        return key
    if algorithm == "ed25519-sha256" and isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, rsa.RSAPrivateKey):
        kind = "an RSA key"
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        kind = "an Ed25519 key"
    else:
        kind = f"a {type(key).__name__.removeprefix('_')}, which DKIM cannot use"
    raise ConfigError(
        f"holds {kind}, not one for {algorithm}; set dkim.algorithm to match the key "
        "(rsa-sha256 or ed25519-sha256)",
        path=source,
    )


def public_value(key: PrivateKey) -> str:
    """The base64 ``p=`` of a key: SubjectPublicKeyInfo for RSA, the raw 32 bytes for Ed25519."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    else:
        raw = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return base64.b64encode(raw).decode("ascii")


def record_text(algorithm: Algorithm, public: str) -> str:
    """The TXT record's value: ``v=DKIM1; k=rsa; p=...``."""
    kind = "ed25519" if algorithm == "ed25519-sha256" else "rsa"
    return f"v=DKIM1; k={kind}; p={public}"


def txt_strings(value: str) -> list[str]:
    """``value`` split into the 255-byte character-strings one TXT record is made of."""
    data = value.encode("ascii")
    return [data[i : i + 255].decode("ascii") for i in range(0, len(data), 255)] or [""]


def txt_record(domain: str, selector: str, algorithm: Algorithm, public: str) -> str:
    """The exact record to publish, in zone-file form, e.g.
    ``sel._domainkey.example.org. IN TXT ("v=DKIM1; k=rsa; p=MIIB..." "...")``."""
    parts = " ".join(f'"{part}"' for part in txt_strings(record_text(algorithm, public)))
    return f"{selector}._domainkey.{domain}. IN TXT ( {parts} )"


_WSP = re.compile(rb"[ \t]+")
_FOLD = re.compile(rb"\r\n(?=[ \t])")
_BARE_LF = re.compile(rb"(?<!\r)\n")


def _split(mime: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The header fields (name, whole field without the final CRLF) and the body."""
    head, sep, body = mime.partition(b"\r\n\r\n")
    if not sep:
        head, body = mime.removesuffix(b"\r\n"), b""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, text = fields[-1]
            fields[-1] = (name, text + b"\r\n" + line)
        elif line:
            fields.append((line.split(b":", 1)[0].strip().lower(), line))
    return fields, body


def _relaxed_header(field: bytes) -> bytes:
    name, _, value = field.partition(b":")
    value = _WSP.sub(b" ", _FOLD.sub(b"", value)).strip(b" ")
    return name.strip().lower() + b":" + value


_SPACE_EOL = re.compile(rb" +\r\n")


def _relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4, over the whole body at once: runs of spaces and tabs become one space,
    spaces at line ends go, empty lines at the end go, and a body that is not empty ends with
    one CRLF. Each rewrite runs only when the body has what it rewrites (most have none of
    it: quoted-printable bodies have no tabs, no runs of spaces, no space at a line end)."""
    if b"\t" in body or b"  " in body:
        body = _WSP.sub(b" ", body)
    if b" \r\n" in body:
        body = _SPACE_EOL.sub(b"\r\n", body)
    body = body.rstrip(b" ")
    end = len(body)
    while end >= 2 and body.startswith(b"\r\n", end - 2, end):
        end -= 2
    return body[:end] + b"\r\n" if end else b""


def _fold(tags: Sequence[str]) -> str:
    """Tags joined as one header value folded at about 78 columns: between tags, after a colon
    of ``h=``, and inside base64 values (where RFC 6376 allows whitespace)."""
    out, width = [], len("DKIM-Signature: ")
    for tag in tags:
        if tag.startswith("h="):
            pieces = [name + ":" for name in tag.split(":")]
            pieces[-1] = pieces[-1][:-1]
        elif tag.startswith(("b=", "bh=")):
            pieces = [tag[i : i + 64] for i in range(0, len(tag), 64)] or [tag]
        else:
            pieces = [tag]
        for index, piece in enumerate(pieces):
            if width + len(piece) + (index == 0) > 78 or tag == "b=":
                out.append("\r\n\t")
                width = 8
            elif out and index == 0:
                out.append(" ")
                width += 1
            out.append(piece)
            width += len(piece)
    return "".join(out)


def sign_message(mime: bytes, key: SigningKey, *, now: float | None = None) -> bytes:
    """Return ``mime`` with a DKIM-Signature by ``key`` on top (line ends made CRLF first).

    The signature covers every header of :data:`SIGNED_HEADERS` present, From and Reply-To once
    more than present, and the whole body (relaxed/relaxed). The bytes after the new header
    are exactly what was signed: send them unchanged.
    """
    if mime.count(b"\n") != mime.count(b"\r\n"):  # a bare LF somewhere
        mime = _BARE_LF.sub(b"\r\n", mime)
    fields, body = _split(mime)
    by_name: dict[bytes, list[bytes]] = {}
    for field_name, field in fields:
        by_name.setdefault(field_name, []).append(field)
    names: list[str] = []
    signed: list[bytes] = []
    for name in SIGNED_HEADERS:
        present = list(by_name.get(name.encode(), ()))
        # RFC 6376 5.4.2: repeated names take instances from the bottom up.
        for field in reversed(present):
            names.append(name)
            signed.append(_relaxed_header(field) + b"\r\n")
        if name in ALWAYS_SIGNED:
            names.append(name)  # an absent instance signs as nothing
    body_hash = base64.b64encode(hashlib.sha256(_relaxed_body(body)).digest()).decode()
    tags = [
        "v=1;",
        f"a={key.algorithm};",
        "c=relaxed/relaxed;",
        f"d={key.domain};",
        f"s={key.selector};",
        f"t={int(time.time() if now is None else now)};",
        f"h={':'.join(names)};",
        f"bh={body_hash};",
        "b=",
    ]
    head = "DKIM-Signature: " + _fold(tags)  # ends with "b="
    data = b"".join(signed) + _relaxed_header(head.encode("ascii"))
    if isinstance(key.key, ed25519.Ed25519PrivateKey):
        signature = key.key.sign(hashlib.sha256(data).digest())
    else:
        signature = key.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    b64 = base64.b64encode(signature).decode("ascii")
    header = head + "\r\n\t".join(b64[i : i + 66] for i in range(0, len(b64), 66))
    return header.encode("ascii") + b"\r\n" + mime


def from_domain(mime: bytes) -> str | None:
    """The domain of the message's From address (lowercase), or None when there is none."""
    fields, _ = _split(mime.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
    for name, field in fields:
        if name == b"from":
            value = _FOLD.sub(b"", field.partition(b":")[2]).decode("utf-8", "replace")
            match = re.search(r"@([A-Za-z0-9.-]+)\s*>?\s*$", value)
            return match.group(1).lower().rstrip(".") if match else None
    return None


def covers(key_domain: str, mail_domain: str | None) -> bool:
    """True when a signature of ``key_domain`` aligns (relaxed) with mail from ``mail_domain``:
    the same domain or a parent of it."""
    if mail_domain is None:
        return False
    key_domain, mail_domain = key_domain.lower().rstrip("."), mail_domain.lower().rstrip(".")
    return mail_domain == key_domain or mail_domain.endswith("." + key_domain)

"""Signed fingerprints: proof that a fingerprint file comes from the holder of a key.

A fingerprint's digests make it tamper-evident, not authentic: anyone can edit a file and
recompute them (for example forge the null scores so that a copy reads as independent).  A
signature fixes who wrote it.  The owner makes a key pair once (``verifier keygen``), signs
fingerprints with the private key (``verifier fingerprint --sign``) and publishes the public
key; an auditor verifies with ``--trusted-key`` (or ``--require-signature`` for any valid one).

Ed25519 through `cryptography` (the ``verifier[sign]`` extra).  The signature covers the
fingerprint's content digest, which covers every setting and every member's digest, so it
covers the whole file.  It proves who produced the file, not that the fingerprinted model is
theirs, nor that the fingerprint was made honestly.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from verifier.errors import InputError, ModelFileError
from verifier.output import write_atomic

#: Name of the signature member inside the fingerprint zip (not itself listed among the digested members).
MEMBER = "signature.json"
_DOMAIN = b"verifier-fingerprint-signature-v1:"
_PREFIX = "ed25519:"


def _ed25519() -> ModuleType:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise InputError("signing needs the 'cryptography' package: pip install 'verifier[sign]'") from None
    return ed25519


def public_text(raw: bytes) -> str:
    """A public key as one line, e.g. 'ed25519:Base64...'."""
    return _PREFIX + base64.b64encode(raw).decode()


def _raw_public(text: str, source: str) -> bytes:
    text = text.strip()
    try:
        raw = base64.b64decode(text.removeprefix(_PREFIX), validate=True) if text.startswith(_PREFIX) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise InputError(f"{source}: not a verifier public key (expected one line 'ed25519:<base64>')")
    return raw


def generate(private_path: Path) -> str:
    """Write a new private key (PEM, readable by the owner only) and `<path>.pub`; returns the public key."""
    ed25519 = _ed25519()
    from cryptography.hazmat.primitives import serialization

    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public = public_text(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    old = os.umask(0o077)  # the private key is the owner's alone
    try:
        write_atomic(private_path, pem)
    finally:
        os.umask(old)
    write_atomic(private_path.with_name(private_path.name + ".pub"), (public + "\n").encode())
    return public


def sign(content_sha256: str, private_path: Path) -> dict:
    """The signature member for a fingerprint whose content digest is `content_sha256`."""
    ed25519 = _ed25519()
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(Path(private_path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{private_path}: not a readable unencrypted Ed25519 private key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise InputError(f"{private_path}: not an Ed25519 private key")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signature = key.sign(_DOMAIN + content_sha256.encode())
    return {"algorithm": "ed25519", "public_key": public_text(raw), "signature": base64.b64encode(signature).decode()}


def check(member: object, content_sha256: str, path: Path) -> str:
    """The signer's public key if `member` is a valid signature of `content_sha256`; else ModelFileError."""
    if not isinstance(member, dict) or set(member) != {"algorithm", "public_key", "signature"} \
            or member["algorithm"] != "ed25519" or not all(isinstance(v, str) for v in member.values()):
        raise ModelFileError(f"{path}: malformed signature member")
    ed25519 = _ed25519()
    from cryptography.exceptions import InvalidSignature

    raw = _raw_public(member["public_key"], str(path))
    try:
        signature = base64.b64decode(member["signature"], validate=True)
        ed25519.Ed25519PublicKey.from_public_bytes(raw).verify(signature, _DOMAIN + content_sha256.encode())
    except (binascii.Error, ValueError, InvalidSignature):
        raise ModelFileError(f"{path}: the fingerprint's signature does not match its content") from None
    return public_text(raw)


def require(signer: str | None, trusted: Sequence[Path], path: str | Path) -> None:
    """Refuse a fingerprint that is unsigned, or (when `trusted` key files are given) signed by another key."""
    if signer is None:
        raise InputError(f"{path}: the fingerprint is not signed, and a signature is required")
    if trusted:
        keys = {public_text(_raw_public(_read(Path(key)), str(key))) for key in trusted}
        if signer not in keys:
            raise InputError(f"{path}: signed by {signer}, which is not among the trusted keys")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[:4096]
    except OSError as exc:
        raise InputError(f"{path}: cannot read the key file ({exc.strerror})") from None

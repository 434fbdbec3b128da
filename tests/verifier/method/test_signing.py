"""Signed fingerprints round-trip; a tampered, unsigned or foreign-signed one is refused when a signature is
required."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from builders import chain_weights, conv_chain, save
from click.testing import CliRunner

from verifier.cli import main
from verifier.method import fingerprint_file

pytest.importorskip("cryptography")


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("signed")
    paths = {name: save(conv_chain(chain_weights(seed, channels=1, depth=3, width=4)), folder / f"{name}.onnx")
             for name, seed in (("owner", 0), ("ref1", 1), ("ref2", 2), ("ref3", 3))}
    for name in ("owner", "forger"):
        made = _invoke("keygen", "-o", str(folder / f"{name}.key"))
        assert made.exit_code == 0, made.output
    refs = [arg for name in ("ref1", "ref2", "ref3") for arg in ("--reference", str(paths[name]))]
    common = [*refs, "--seeds", "1", "--size", "8", "--threads", "1"]
    assert _invoke("fingerprint", str(paths["owner"]), "-o", str(folder / "signed.vfp"), "--sign",
                   str(folder / "owner.key"), *common).exit_code == 0
    assert _invoke("fingerprint", str(paths["owner"]), "-o", str(folder / "unsigned.vfp"), *common).exit_code == 0
    return {**paths, "folder": folder}


def test_private_key_is_private(signed: dict[str, Path]):
    assert (signed["folder"] / "owner.key").stat().st_mode & 0o077 == 0
    assert (signed["folder"] / "owner.key.pub").read_text().startswith("ed25519:")


def test_signed_round_trip_and_trusted_key(signed: dict[str, Path]):
    folder = signed["folder"]
    loaded = fingerprint_file.load(folder / "signed.vfp")
    assert loaded.signer == (folder / "owner.key.pub").read_text().strip()
    result = _invoke("verify", str(folder / "signed.vfp"), str(signed["owner"]), "--trusted-key",
                     str(folder / "owner.key.pub"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["inputs"]["fingerprint"]["signer"] == loaded.signer


@pytest.mark.parametrize(("fingerprint", "key", "message"), [
    ("unsigned.vfp", "owner.key.pub", "not signed"),
    ("signed.vfp", "forger.key.pub", "not among the trusted keys"),
])
def test_required_signature_refuses(signed: dict[str, Path], fingerprint: str, key: str, message: str):
    folder = signed["folder"]
    result = _invoke("verify", str(folder / fingerprint), str(signed["owner"]), "--trusted-key", str(folder / key))
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    unsigned_any = _invoke("verify", str(folder / "unsigned.vfp"), str(signed["owner"]), "--require-signature")
    assert unsigned_any.exit_code == 2 and "not signed" in unsigned_any.stderr


def test_forged_null_with_recomputed_digests_breaks_the_signature(signed: dict[str, Path], tmp_path: Path):
    """The attack from the issue: forge null_scores, recompute every digest; the signature no longer matches."""
    source = signed["folder"] / "signed.vfp"
    with zipfile.ZipFile(source) as archive:
        content = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(content["fingerprint.json"])
    meta["calibration"]["null_scores"] = [5.0, 5.1, 5.2]
    meta["content_sha256"] = fingerprint_file._content_digest(meta)
    content["fingerprint.json"] = json.dumps(meta).encode()
    forged = tmp_path / "forged.vfp"
    with zipfile.ZipFile(forged, "w") as archive:
        for name, data in content.items():
            archive.writestr(name, data)
    result = _invoke("verify", str(forged), str(signed["owner"]))
    assert result.exit_code == 2 and "signature does not match" in result.stderr
    without = tmp_path / "stripped.vfp"  # and dropping the signature makes it unsigned
    with zipfile.ZipFile(without, "w") as archive:
        for name, data in content.items():
            if name != "signature.json":
                archive.writestr(name, data)
    result = _invoke("verify", str(without), str(signed["owner"]), "--require-signature")
    assert result.exit_code == 2 and "not signed" in result.stderr

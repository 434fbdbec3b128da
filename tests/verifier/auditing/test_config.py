"""verifier.toml: a bare `verifier audit` takes owners, suspects, outputs and policy from it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from audit_samples import SETTINGS
from click.testing import CliRunner

from verifier.auditing import config
from verifier.cli import main
from verifier.errors import InputError


def _toml(**tables: str) -> str:
    return "\n".join(f"{header}\n{body}" for header, body in tables.items())


def test_bare_audit_reads_verifier_toml(audited, trained_models: dict[str, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch):
    """One owner given as a fingerprint file, one made from its model on first use; outputs and gate from the file."""
    (tmp_path / "fp").mkdir()
    shutil.copy(audited.owners["owner"], tmp_path / "fp" / "ours.vfp")
    (tmp_path / "vendor").mkdir()
    shutil.copy(audited.folder / "copy.onnx", tmp_path / "vendor" / "copy.onnx")
    shutil.copy(trained_models["ref_0"], tmp_path / "vendor" / "unrelated.onnx")
    references = ", ".join(f'"{trained_models[name]}"' for name in ("ref_0", "ref_1", "ref_2"))
    options = "\n".join(f"{key} = {value}" for key, value in SETTINGS.items())
    (tmp_path / "verifier.toml").write_text(
        '[audit]\nsuspects = ["vendor"]\nfail_on = ["independent"]\njson = "out/audit.json"\n'
        f'html = "out/audit.html"\ncache = "cache"\njobs = 1\n\n[[owners]]\nfingerprint = "fp/ours.vfp"\n\n'
        f'[[owners]]\nfingerprint = "fp/theirs.vfp"\nmodel = "{trained_models["independent"]}"\n'
        f"references = [{references}]\n{options}\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["audit"])
    assert (tmp_path / "fp" / "theirs.vfp").is_file()  # made from the model on first use
    results = json.loads((tmp_path / "out" / "audit.json").read_text())
    verdicts = {entry["name"]: (entry["verdict"], entry["best_owner"]) for entry in results["suspects"]}
    assert verdicts["copy.onnx"] == ("derived", "ours")
    assert verdicts["unrelated.onnx"][0] == "independent"
    assert (tmp_path / "out" / "audit.html").is_file() and (tmp_path / "cache" / "evidence").is_dir()
    assert result.exit_code == 1 and results["gate"]["fail_on"] == ["independent"]  # one is not ours
    assert results["gate"]["failing"] == ["unrelated.onnx"]


@pytest.mark.parametrize(("text", "message"), [
    (_toml(**{"[audit]": "suspect = ['x']"}), "unknown key(s) suspect in [audit]"),
    (_toml(**{"[[owners]]": "model = 'm.onnx'"}), "needs 'fingerprint'"),
    (_toml(**{"[audit]": "fail_on = ['sometimes']"}), "unknown --fail-on value(s) sometimes"),
    (_toml(**{"[audit]": "jobs = 0"}), "'jobs' must be a positive integer"),
    ("[audit\n", "not valid TOML"),
    (_toml(**{"[[endpoints]]": "model = 'm'"}), "every [[endpoints]] entry needs 'url'"),
    (_toml(**{"[[endpoints]]": "url = 'http://h/v2/models/m'\nretries = 3"}),
     "unknown key(s) retries in [[endpoints]]"),
    (_toml(**{"[[endpoints]]": "url = 'ftp://h/v2/models/m'"}), "must be http:// or https://"),
    (_toml(**{"[[endpoints]]": "url = 'http://h/v2/models/m'\nheaders = { A = '${VERIFIER_UNSET_TOKEN}' }"}),
     "uses ${VERIFIER_UNSET_TOKEN}, which is not set in the environment"),
    (_toml(**{"[[endpoints]]": "url = 'http://h/v2/models/m'\nheaders = 'Bearer x'"}), "'headers' must be a table"),
    (_toml(**{"[[endpoints]]": "url = 'http://h/v2/models/m'\nmax_queries = 0"}),
     "'max_queries' must be a positive integer"),
    (_toml(**{"[[endpoints]]": "url = 'http://h/v2/models/m'\nrange = '1,0'"}), "lo < hi"),
    (_toml(**{"[audit]": "engine = 'spark'"}), "'engine' must be one of local, ray"),
    (_toml(**{"[audit]": "address = 'auto'"}), "needs engine = \"ray\""),
    (_toml(**{"[[owners]]": "fingerprint = 'a.vfp'\nseeds = 'four'"}), "'seeds' must be a positive integer"),
    (_toml(**{"[[owners]]": "fingerprint = 'a.vfp'\nmethod = 'vibes'"}), "'method' must be one of response, paper"),
    (_toml(**{"[[owners]]": "fingerprint = 'a.vfp'\nfpr = 1.5"}), "'fpr' must be a number above 0 and below 1"),
    (_toml(**{"[[owners]]": "fingerprint = 'a.vfp'\nsigma = true"}), "'sigma' must be a number above 0"),
    (_toml(**{"[[owners]]": "fingerprint = 'a.vfp'\ndegradation = 'melt'"}), "'degradation' must be one of"),
])
def test_bad_config_is_one_line(tmp_path: Path, text: str, message: str):
    path = tmp_path / "verifier.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(message)):
        config.load(path)
    result = CliRunner().invoke(main, ["audit", "--config", str(path)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_paths_are_relative_to_the_file(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "verifier.toml"
    path.write_text('[audit]\nsuspects = "models"\n\n[[owners]]\nfingerprint = "a.vfp"\nseeds = 2\n')
    loaded = config.load(path)
    assert loaded.suspects == (tmp_path / "sub" / "models",)
    assert loaded.owners[0].fingerprint == tmp_path / "sub" / "a.vfp"
    assert loaded.owners[0].options == config.FingerprintOptions(seeds=2)
    assert loaded.fail_on == ("derived", "error")  # the documented default
    assert (loaded.engine, loaded.address) == ("local", None)


def test_ray_engine_and_address(tmp_path: Path):
    path = tmp_path / "verifier.toml"
    path.write_text('[audit]\nengine = "ray"\naddress = "auto"\n')
    assert (config.load(path).engine, config.load(path).address) == ("ray", "auto")


def test_endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """[[endpoints]]: suspects behind a KServe v2 URL; tokens come from the environment, not the file."""
    monkeypatch.setenv("VENDOR_TOKEN", "s3cret")
    path = tmp_path / "verifier.toml"
    path.write_text('[[owners]]\nfingerprint = "a.vfp"\n\n'
                    '[[endpoints]]\nurl = "https://vendor.example/v2/models/denoiser"\n'
                    'headers = { Authorization = "Bearer ${VENDOR_TOKEN}" }\nmax_queries = 50\n\n'
                    '[[endpoints]]\nname = "sr"\nurl = "http://127.0.0.1:8080"\nmodel = "x2"\ntimeout = 5\n'
                    'layout = "NHWC"\nrange = "0,255"\n')
    first, second = config.load(path).endpoints
    assert (first.name, first.model, first.max_queries) == ("denoiser", "denoiser", 50)
    assert first.headers == (("Authorization", "Bearer s3cret"),) and "s3cret" not in json.dumps(first.to_dict())
    assert (second.name, second.url, second.timeout) == ("sr", "http://127.0.0.1:8080/v2/models/x2", 5.0)
    assert (second.layout, second.value_range) == ("NHWC", (0.0, 255.0))

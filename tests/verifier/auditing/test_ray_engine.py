"""`verifier audit --engine ray`: a real local Ray instance (2 CPUs, one per module) against the local engine.

The rows must be the local engine's (same verdicts, bit-identical scores at the same thread count); a broken
file or a dead worker is one error row; a second audit of the folder is served from the cache; an interrupt
cancels the outstanding tasks and leaves Ray usable.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from click.testing import CliRunner  # noqa: E402

import verifier  # noqa: E402
from exporters.converter import Exporters  # noqa: E402
from verifier.auditing import results_json as audit_json  # noqa: E402
from verifier.auditing.discovery import load_owners  # noqa: E402
from verifier.auditing.ray_engine import TaskContext, audit_task, run_on_ray  # noqa: E402
from verifier.auditing.results import AuditResult, AuditRow  # noqa: E402
from verifier.auditing.worker import AuditInput  # noqa: E402
from verifier.cli import main  # noqa: E402
from verifier.method import fingerprint_file  # noqa: E402

pytestmark = pytest.mark.slow
ZOO = Path(__file__).resolve().parents[3] / "models" / "zoo" / "dncnn6_gray_s50"
#: Fields that legitimately differ between two runs of the same audit.
_TIMING = ("seconds",)


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    """One local Ray instance for the module, sized like this machine's share of CPUs."""
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def scene(trained_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An owner fingerprint and a vendor folder: the trained owner's copies, independent models, two zoo models
    and a file that is not a model."""
    import trained

    work = tmp_path_factory.mktemp("ray-audit")
    owner = work / "owner.vfp"
    fingerprint_file.save(trained.fingerprint(trained_models["owner"], trained_models), owner)
    folder = work / "vendor"
    folder.mkdir()
    for name in ("owner", "finetuned", "independent"):
        shutil.copy(trained_models[name], folder / f"{name}.onnx")
    for name in ("source", "indep_seed"):
        shutil.copy(ZOO / f"{name}.onnx", folder / f"zoo_{name}.onnx")
    (folder / "broken.onnx").write_bytes(b"not a model at all")
    return {"owner": owner, "folder": folder, "work": work}


def _comparable(result: AuditResult) -> list[dict]:
    """The rows as the JSON results hold them, without timings and cache flags."""
    rows = []
    for row in result.rows:
        entry = audit_json._suspect(row)
        for name in _TIMING:
            entry.pop(name)
        for pair in entry["pairs"]:
            pair.pop("seconds")
            pair.pop("cached")
        rows.append(entry)
    return rows


def test_rows_equal_the_local_engine_and_the_cache_serves_a_second_run(scene: dict[str, Path]):
    work = scene["work"]
    local = verifier.audit([scene["owner"]], [scene["folder"]], cache=work / "local-cache", jobs=1, threads=1)
    seen: list[tuple[str, int, int]] = []
    first = verifier.audit([scene["owner"]], [scene["folder"]], cache=work / "ray-cache", threads=1, engine="ray",
                           on_row=lambda row, done, total: seen.append((row.name, done, total)))
    assert first.engine == "ray" and first.jobs == 2 and first.threads == 1
    assert _comparable(first) == _comparable(local)  # scores bit-identical: == on floats
    verdicts = {row.name: row.verdict for row in first.rows}
    assert verdicts["owner.onnx"] == verdicts["finetuned.onnx"] == "derived"
    assert verdicts["independent.onnx"] == "independent" and verdicts["broken.onnx"] == "error"
    assert [done for _, done, _ in seen] == list(range(1, 7)) and {total for *_, total in seen} == {6}
    assert sorted(name for name, *_ in seen) == sorted(verdicts)
    assert not any(pair.cached for row in first.rows for pair in row.pairs)

    second = verifier.audit([scene["owner"]], [scene["folder"]], cache=work / "ray-cache", threads=1,
                            engine="ray")
    assert _comparable(second) == _comparable(first)
    scored = [pair for row in second.rows for pair in row.pairs if pair.score is not None]
    assert scored and all(pair.cached for pair in scored)


def _dies_on_crash(context: TaskContext, suspect: AuditInput) -> AuditRow:
    """A task whose worker process dies on one suspect, as a native crash would kill it."""
    if not isinstance(suspect, tuple) or suspect[1] != "crash.onnx":
        return audit_task(context, suspect)
    os._exit(1)


def test_a_dead_worker_is_one_error_row(scene: dict[str, Path], tmp_path: Path):
    folder = tmp_path / "vendor"
    folder.mkdir()
    for name in ("owner.onnx", "crash.onnx", "independent.onnx"):
        shutil.copy(scene["folder"] / ("owner.onnx" if name == "crash.onnx" else name), folder / name)
    rows: dict[int, AuditRow] = {}
    owners = load_owners([scene["owner"]])
    suspects: list[AuditInput] = [(folder / name, name) for name in ("owner.onnx", "crash.onnx", "independent.onnx")]
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import a test module
    try:
        run_on_ray(owners, suspects, tmp_path / "cache", 1, None, rows.__setitem__, Exporters(), work=_dies_on_crash)
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert [rows[index].verdict for index in range(3)] == ["derived", "error", "independent"]
    assert rows[1].error is not None and rows[1].error.startswith("worker failed: "), rows[1].error


def test_interrupt_cancels_the_outstanding_tasks(scene: dict[str, Path], tmp_path: Path):
    def interrupt(row: AuditRow, done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        verifier.audit([scene["owner"]], [scene["folder"]], cache=tmp_path / "cache", threads=1, engine="ray",
                       on_row=interrupt)
    assert ray.is_initialized()  # the test's instance stays usable: the next audit runs
    again = verifier.audit([scene["owner"]], [scene["folder"] / "owner.onnx"], cache=tmp_path / "cache", threads=1,
                           engine="ray")
    assert [row.verdict for row in again.rows] == ["derived"]


def test_cli_engine_ray(scene: dict[str, Path], tmp_path: Path):
    result = CliRunner().invoke(main, ["audit", "--owner", str(scene["owner"]), str(scene["folder"]), "--engine",
                                       "ray", "--threads", "1", "--cache", str(tmp_path / "cache"), "--json"])
    assert result.exit_code == 2, result.output  # derived copies and a broken file: the gate fails on the error
    document = json.loads(result.stdout)
    assert document["settings"]["engine"] == "ray" and document["summary"]["derived"] >= 2
    assert "Ray task(s) at once x 1 thread(s)" in result.stderr

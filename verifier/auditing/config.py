"""`verifier.toml`: owner fingerprints, suspects and the gate's policy, so a pipeline runs a bare `verifier audit`.

Example (paths are relative to the file's folder)::

    [audit]
    suspects = ["vendor_models/"]      # files or folders
    fail_on = ["derived", "error"]     # the gate (see verifier.auditing.results.FAIL_ON)
    json = "audit.json"                # optional outputs
    html = "audit.html"
    cache = ".verifier-cache"          # default: ~/.cache/verifier
    jobs = 2                           # default: as many as the cores allow
    threads = 2                        # default: the fingerprints' own
    engine = "ray"                     # default "local"; "ray" runs suspects as Ray tasks (the ray extra)
    address = "auto"                   # the Ray cluster (default $RAY_ADDRESS, else a local Ray instance)

    [[owners]]
    fingerprint = "fingerprints/ours.vfp"
    # optional: made from this model when the fingerprint file does not exist yet
    model = "models/ours.onnx"
    references = ["models/independent/"]
    seeds = 4

    [[endpoints]]                      # a suspect served behind a KServe v2 REST endpoint (behaviour only)
    name = "vendor-denoiser"           # the row's name (default: the model's)
    url = "https://vendor.example/v2/models/denoiser"   # or the server's base URL with model = "denoiser"
    headers = { Authorization = "Bearer ${VENDOR_TOKEN}" }   # ${NAME}: from the environment
    max_queries = 50                   # default 100; timeout = 30 (seconds), layout = "NHWC", range = "0,255"

Unknown keys are refused, so a typo cannot silently change a gate.  Suspects given on the command line
replace the file's suspects and endpoints alike.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from verifier.auditing.results import DEFAULT_FAIL_ON, ENGINES, Engine, check_fail_on
from verifier.errors import InputError
from verifier.graph.io_spec import parse_range
from verifier.method.behaviour import METHODS, MethodName
from verifier.method.degradation import KINDS, Kind
from verifier.method.inversion import RECIPES
from verifier.remote.endpoint import DEFAULT_MAX_QUERIES, DEFAULT_TIMEOUT, EndpointSpec, headers_from

#: The file a bare `verifier audit` reads from the working directory.
DEFAULT_NAME = "verifier.toml"
#: Fingerprint options an [[owners]] entry may give for making a missing fingerprint.
FINGERPRINT_OPTIONS = ("method", "recipe", "seeds", "size", "degradation", "sigma", "fpr", "threads")
_AUDIT_KEYS = {"suspects", "fail_on", "json", "html", "cache", "jobs", "threads", "engine", "address"}
_OWNER_KEYS = {"fingerprint", "model", "references", *FINGERPRINT_OPTIONS}
_ENDPOINT_KEYS = {"name", "url", "model", "headers", "max_queries", "timeout", "layout", "range"}


@dataclass(frozen=True)
class FingerprintOptions:
    """What an [[owners]] entry says about making its fingerprint (``verifier fingerprint``'s options), checked
    when the file is read; None: the default."""

    method: MethodName | None = None
    recipe: str | None = None
    seeds: int | None = None
    size: int | None = None
    degradation: Kind | None = None
    sigma: float | None = None
    fpr: float | None = None
    threads: int | None = None


@dataclass(frozen=True)
class OwnerSpec:
    """An owner: its fingerprint file and, optionally, how to make it."""

    fingerprint: Path
    model: Path | None = None
    references: tuple[Path, ...] = ()
    options: FingerprintOptions = FingerprintOptions()


@dataclass(frozen=True)
class AuditConfig:
    """Everything `verifier audit` can take from the file; None and empty mean 'not set'."""

    owners: tuple[OwnerSpec, ...] = ()
    suspects: tuple[Path, ...] = ()
    endpoints: tuple[EndpointSpec, ...] = ()
    fail_on: tuple[str, ...] = DEFAULT_FAIL_ON
    json: Path | None = None
    html: Path | None = None
    cache: Path | None = None
    jobs: int | None = None
    threads: int | None = None
    engine: Engine = "local"
    address: str | None = None


def _check_keys(table: dict, allowed: set[str], where: str, path: Path) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(unknown)} in {where}; "
                         f"allowed: {', '.join(sorted(allowed))}")


def _paths(value, name: str, folder: Path, path: Path) -> tuple[Path, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
        raise InputError(f"{path}: '{name}' must be a path or a list of paths")
    return tuple(folder / item for item in values)


def _integer(value, name: str, path: Path) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InputError(f"{path}: '{name}' must be a positive integer")
    return value


def _choice(value, name: str, choices: Iterable[str], path: Path) -> str | None:
    if value is not None and value not in choices:
        raise InputError(f"{path}: '{name}' must be one of {', '.join(choices)}")
    return value


def _number(value, name: str, path: Path, below: float = math.inf) -> float | None:
    if value is not None and (not isinstance(value, int | float) or isinstance(value, bool) or
                              not 0 < value < below):
        raise InputError(f"{path}: '{name}' must be a number above 0" + (f" and below {below:g}" if below < math.inf
                                                                         else ""))
    return None if value is None else float(value)


def _fingerprint_options(entry: dict, path: Path) -> FingerprintOptions:
    """An [[owners]] entry's fingerprint options, each of the type and range ``verifier fingerprint`` takes."""
    return FingerprintOptions(
        method=cast(MethodName | None, _choice(entry.get("method"), "method", METHODS, path)),
        recipe=_choice(entry.get("recipe"), "recipe", RECIPES, path),
        seeds=_integer(entry.get("seeds"), "seeds", path), size=_integer(entry.get("size"), "size", path),
        degradation=cast(Kind | None, _choice(entry.get("degradation"), "degradation", KINDS, path)),
        sigma=_number(entry.get("sigma"), "sigma", path), fpr=_number(entry.get("fpr"), "fpr", path, below=1),
        threads=_integer(entry.get("threads"), "threads", path))


def _endpoint(entry: dict, path: Path) -> EndpointSpec:
    """One [[endpoints]] entry, checked as `verify --endpoint` checks its options."""
    where = f"{path}: [[endpoints]] {entry.get('name') or entry.get('url') or ''}".rstrip()
    _check_keys(entry, _ENDPOINT_KEYS, "[[endpoints]]", path)
    for name in ("url", "model", "name", "layout", "range"):
        if name in entry and not isinstance(entry[name], str):
            raise InputError(f"{where}: '{name}' must be a string")
    if "url" not in entry:
        raise InputError(f"{path}: every [[endpoints]] entry needs 'url'")
    headers = entry.get("headers", {})
    if not isinstance(headers, dict):
        raise InputError(f"{where}: 'headers' must be a table, e.g. headers = {{ Authorization = \"Bearer ...\" }}")
    timeout = entry.get("timeout", DEFAULT_TIMEOUT)
    try:
        return EndpointSpec.parse(entry["url"], entry.get("model"), name=entry.get("name"),
                                  headers=headers_from(headers, where),
                                  max_queries=_integer(entry.get("max_queries"), "max_queries", path)
                                  or DEFAULT_MAX_QUERIES,
                                  timeout=timeout, layout=entry.get("layout"),
                                  value_range=parse_range(entry["range"]) if "range" in entry else None)
    except InputError as exc:
        message = str(exc)
        raise InputError(message if message.startswith(str(path)) else f"{where}: {message}") from None


def load(path: Path) -> AuditConfig:
    """Read and check a config file; any problem is a one-line InputError naming the file."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"{path}: cannot read config ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from exc
    folder = Path(path).parent
    _check_keys(data, {"audit", "owners", "endpoints"}, "the top level", path)
    audit = data.get("audit", {})
    _check_keys(audit, _AUDIT_KEYS, "[audit]", path)
    owners = []
    for entry in data.get("owners", []):
        _check_keys(entry, _OWNER_KEYS, "[[owners]]", path)
        if "fingerprint" not in entry:
            raise InputError(f"{path}: every [[owners]] entry needs 'fingerprint'")
        (fingerprint,) = _paths(entry["fingerprint"], "fingerprint", folder, path)
        model = _paths(entry["model"], "model", folder, path)[0] if "model" in entry else None
        owners.append(OwnerSpec(fingerprint, model, _paths(entry.get("references", []), "references", folder, path),
                                _fingerprint_options(entry, path)))
    fail_on = audit.get("fail_on", list(DEFAULT_FAIL_ON))
    fail_on = check_fail_on([fail_on] if isinstance(fail_on, str) else fail_on)
    single = {name: _paths(audit[name], name, folder, path)[0] if name in audit else None
              for name in ("json", "html", "cache")}
    engine, address = audit.get("engine", "local"), audit.get("address")
    if engine not in ENGINES:
        raise InputError(f"{path}: 'engine' must be one of {', '.join(ENGINES)}")
    if address is not None and (not isinstance(address, str) or engine != "ray"):
        raise InputError(f"{path}: 'address' must be a string, and names a Ray cluster: it needs engine = \"ray\"")
    entries = data.get("endpoints", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise InputError(f"{path}: 'endpoints' must be [[endpoints]] tables")
    return AuditConfig(owners=tuple(owners), suspects=_paths(audit.get("suspects", []), "suspects", folder, path),
                       endpoints=tuple(_endpoint(entry, path) for entry in entries),
                       fail_on=fail_on, jobs=_integer(audit.get("jobs"), "jobs", path),
                       threads=_integer(audit.get("threads"), "threads", path), engine=engine, address=address,
                       **single)

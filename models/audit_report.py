"""The README's audit example on the bundled zoo, and the screenshot of its HTML report in docs/.

    python -m models.audit_report            # runs COMMANDS in a scratch folder, writes docs/audit-report.png

COMMANDS are the lines the README shows, run as they are (paths into this repository are
resolved from its root, outputs land in the scratch folder); the report is rendered with
headless Chromium (`apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "audit-report.png"
COMMANDS = (
    "verifier fingerprint models/zoo/dncnn6_gray_s50/source.onnx -o dncnn6.vfp --sigma 0.196 "
    "--reference verifier/reference_models/noise-c1-x1 --reference models/zoo/dncnn6_gray_s50/ref_seed.onnx",
    "verifier audit --owner dncnn6.vfp models/zoo/dncnn6_gray_s50 -o audit.json --html audit.html",
)


def _argv(command: str, extra: Sequence[str]) -> list[str]:
    """The command as this interpreter runs it, repository paths made absolute, `extra` options appended."""
    words = shlex.split(command)
    assert words[0] == "verifier", command
    resolved = [str(ROOT / word) if (ROOT / word).exists() and not Path(word).is_absolute() else word
                for word in words[1:]]
    return [sys.executable, "-m", "verifier", *resolved, *extra]


def run(folder: Path, fingerprint_options: Sequence[str] = ()) -> int:
    """Run COMMANDS in `folder` (fingerprint_options appended to `verifier fingerprint`); the audit's exit code.

    The repository goes on PYTHONPATH, so this works from a checkout that was not pip-installed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for command in COMMANDS[:-1]:
        subprocess.run(_argv(command, fingerprint_options), cwd=folder, env=env, check=True)
    return subprocess.run(_argv(COMMANDS[-1], ()), cwd=folder, env=env).returncode


def chromium() -> str | None:
    """A headless-capable Chromium binary, if installed."""
    return next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)


def screenshot(page: Path, output: Path, size: str = "1100,1700") -> None:
    """Render `page` with headless Chromium into the PNG `output`."""
    binary = chromium()
    if binary is None:
        raise SystemExit("no chromium binary (apt-get install chromium)")
    output.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={size}", f"--screenshot={output}", page.as_uri()], check=True,
                   capture_output=True, timeout=180)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=SCREENSHOT, help="PNG to write")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        code = run(Path(folder))
        print(f"audit exit code {code} (1: derived models found, as expected on this folder)")
        screenshot(Path(folder) / "audit.html", args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""Native libraries' own writes to stderr, kept off the user's terminal.

onnxruntime-training's gradient builder and TensorFlow (absl's "log messages before
absl::InitializeLog()", oneDNN and grappler INFO lines) write straight to file descriptor 2 from
C++, ignoring Python's logging and their own severity settings; above a results table or a
one-line error they read as failures.  Only fd-level redirection silences them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Send fd 2 to /dev/null for the block (Python's own sys.stderr is flushed first, then restored)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)

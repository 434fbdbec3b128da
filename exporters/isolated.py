"""Run a C-library file parser in a child process, so a malformed vendor file cannot hang or crash verifier.

HDF5 (under h5py) is a large C library: fuzzing found a 8 KB Keras weights file whose one
variable-length string attribute made `h5py` spin forever inside the C code, where no Python signal
or timeout can reach it.  A parser that only reads arrays can run in a forked child instead: the
parent waits at most :data:`TIMEOUT_S` seconds, caps the child's address space at
:data:`MEMORY_BYTES`, and turns a hang, a crash or a memory blow-up into one :class:`ExportError`.
Only plain data (NumPy arrays, lists, dicts, strings) comes back, through a pipe.

The child is forked from a fresh "forkserver" process, never from the caller: the caller may hold
framework thread pools (torch, onnxruntime, TensorFlow) that do not survive a fork.
"""

from __future__ import annotations

import multiprocessing
import resource
import traceback
from collections.abc import Callable
from typing import TypeVar

from exporters.base import ExportError
from verifier.errors import VerifierError, first_line

#: Seconds a reader may take; valid weight files of the supported models parse in well under 10 s.
TIMEOUT_S = 120.0
#: Address-space cap of the reader's process (the interpreter and NumPy take about 1 GiB of it).
MEMORY_BYTES = 16 << 30

Result = TypeVar("Result")


class ReaderBug(RuntimeError):
    """The reader raised something other than a refusal: a bug in verifier, with the child's traceback."""


def _child(connection, function: Callable[..., object], args: tuple) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    try:
        reply: tuple[str, object] = ("ok", function(*args))
    except VerifierError as exc:
        reply = ("refused", str(exc))
    except MemoryError:
        reply = ("refused", f"needs more than {MEMORY_BYTES >> 30} GiB of memory to read")
    except BaseException:
        reply = ("bug", traceback.format_exc())
    connection.send(reply)
    connection.close()


def _died(what: str, exitcode: int | None) -> str:
    """A negative exit code is the signal that killed the reader: the file made the C code crash."""
    if exitcode is not None and exitcode < 0:
        return f"{what}: the reader crashed on this file (signal {-exitcode}); the file is malformed"
    return f"{what}: the reader process stopped with exit code {exitcode} before answering"


def call(function: Callable[..., Result], *args: object, what: str) -> Result:
    """`function(*args)` in a child process; `what` names the file in the refusals ("cannot read X: ...").

    `function` must be importable by name (a module-level function) and return picklable plain data.
    Inside a daemonic process, which may not have children, it runs in-process instead.
    """
    if multiprocessing.current_process().daemon:
        return function(*args)
    context = multiprocessing.get_context("forkserver")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, function, args), daemon=True)
    process.start()
    sender.close()
    try:
        if not receiver.poll(TIMEOUT_S):
            raise ExportError(f"{what}: the reader took longer than {TIMEOUT_S:.0f} s (a malformed file can "
                              "make it loop); refused")
        try:
            status, value = receiver.recv()
        except (EOFError, OSError) as exc:
            process.join(5)
            raise ExportError(_died(what, process.exitcode)) from exc
    finally:
        receiver.close()
        process.kill()
        process.join()
    if status == "refused":
        raise ExportError(first_line(str(value)))
    if status == "bug":
        raise ReaderBug(f"{what}: the reader failed:\n{value}")
    return value

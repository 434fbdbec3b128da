"""Errors the user can act on.

Every failure caused by the input (a file, a model, an option) is raised as a
:class:`VerifierError` whose message is one line naming the problem, so the CLI
can print it and exit with status 2 without a traceback.
"""

from __future__ import annotations

import re

_ORT_PREFIX = re.compile(r"\[ONNXRuntimeError\] : \d+ : \w+ : ")
_SOURCE_LOCATION = re.compile(r"\S+\.(?:cc|cpp|h|hpp):\d+:? (?:\w+: )?(?:Assertion `[^`]*' failed: )?")


class VerifierError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""

    exit_code = 2


class ModelFileError(VerifierError):
    """The file is missing, unreadable, not ONNX, corrupt or unsafe."""


class UnsupportedModelError(VerifierError):
    """The model is valid ONNX but not an image-to-image model we can handle."""


class GradientUnavailableError(UnsupportedModelError):
    """onnxruntime-training cannot differentiate the model w.r.t. its input."""


class RuntimeMissingError(VerifierError):
    """The onnxruntime-training build is absent or was overwritten."""


class InputError(VerifierError):
    """An array handed to a model has the wrong shape, type or values."""


class EndpointError(VerifierError):
    """An inference endpoint cannot be reached, refuses a request, or answers something that is not the image
    it was asked for (wrong shape, non-finite values, not JSON)."""


class QueryBudgetError(EndpointError):
    """Verifying would send an endpoint more inference requests than the user allowed (--max-queries)."""


def first_line(exc: BaseException | str, limit: int = 200) -> str:
    """The reason an exception (or its message, as :mod:`exporters.isolated` passes it on) gives, on one line.

    Native libraries write pages; onnxruntime nests "[ONNXRuntimeError] : 1 : FAIL : "
    prefixes and C++ source locations before the part a user can act on.
    """
    text = _ORT_PREFIX.split(str(exc).strip())[-1].strip()
    text = _SOURCE_LOCATION.sub("", text).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__

"""verifier: tell whether a suspect image-restoration model was derived from an owner's model.

The pipeline is framework-neutral: every model arrives as ONNX, is normalised to
one convention (float32 NCHW in [0, 1]) and differentiated with
onnxruntime-training.  Importing this package needs no deep-learning framework.

The Python API (:mod:`verifier.api`): ``verifier.fingerprint(...)``, ``verifier.verify(...)`` and
``verifier.audit(...)``, and the typed objects they return.  The layers below it, in import order:
:mod:`verifier.graph` (file -> runnable, differentiable model), :mod:`verifier.method` (critical images,
evidence, calibrated verdict), :mod:`verifier.remote` (suspects behind an endpoint) and
:mod:`verifier.auditing` (many suspects, many owners).
"""

from verifier._version import __version__
from verifier.api import audit, fingerprint, verify
from verifier.auditing.results import AuditResult, AuditRow, PairResult
from verifier.errors import VerifierError
from verifier.graph.io_spec import ImageIO
from verifier.graph.model import Model, load_model, model_from_proto
from verifier.graph.objective import Objective
from verifier.method.fingerprint import Fingerprint
from verifier.method.verification import Verdict

__all__ = ["AuditResult", "AuditRow", "Fingerprint", "ImageIO", "Model", "Objective", "PairResult", "Verdict",
           "VerifierError", "__version__", "audit", "fingerprint", "load_model", "model_from_proto", "verify"]

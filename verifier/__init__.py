"""verifier: tell whether a suspect image-restoration model was derived from an owner's model.

The pipeline is framework-neutral: every model arrives as ONNX, is normalised to
one convention (float32 NCHW in [0, 1]) and differentiated with
onnxruntime-training.  Importing this package needs no deep-learning framework.

The Python API (:mod:`verifier.api`): ``verifier.fingerprint(...)``, ``verifier.verify(...)`` and
``verifier.audit(...)``.  ``verifier.fingerprint`` and ``verifier.audit`` stay the submodules they
always were; :mod:`verifier.api` makes them callable.
"""

from verifier import audit, fingerprint
from verifier.api import verify
from verifier.audit import AuditResult, AuditRow, PairResult
from verifier.errors import VerifierError
from verifier.fingerprint import Fingerprint
from verifier.io_spec import ImageIO
from verifier.model import Model, load_model, model_from_proto
from verifier.objective import Objective
from verifier.verification import Verdict

__version__ = "0.1.0"
__all__ = ["AuditResult", "AuditRow", "Fingerprint", "ImageIO", "Model", "Objective", "PairResult", "Verdict",
           "VerifierError", "__version__", "audit", "fingerprint", "load_model", "model_from_proto", "verify"]

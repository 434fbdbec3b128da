"""verifier: tell whether a suspect image-restoration model was derived from an owner's model.

The pipeline is framework-neutral: every model arrives as ONNX, is normalised to
one convention (float32 NCHW in [0, 1]) and differentiated with
onnxruntime-training.  Importing this package needs no deep-learning framework.
"""

from verifier.errors import VerifierError
from verifier.io_spec import ImageIO
from verifier.model import Model, load_model, model_from_proto
from verifier.objective import Objective

__version__ = "0.1.0"
__all__ = ["ImageIO", "Model", "Objective", "VerifierError", "__version__", "load_model", "model_from_proto"]

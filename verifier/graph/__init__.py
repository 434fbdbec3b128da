"""From a file to a model we can run and differentiate.

``onnx_file`` (safe reading: external data confined and inlined) -> ``normalise`` (opsets, IR, shapes) ->
``io_spec``/``adapters`` (one convention: float32 NCHW in [0, 1]) -> ``specialise``/``lowering`` (rewrite what
onnxruntime-training cannot differentiate) -> ``gradient``/``runtime`` (sessions and input gradients) ->
``model`` (the :class:`~verifier.graph.model.Model` the method works on).  ``objective`` builds loss graphs,
``inspection`` describes a model, and ``suspect`` is what verification needs from any suspect (a model here, or
an endpoint in :mod:`verifier.remote`).
"""

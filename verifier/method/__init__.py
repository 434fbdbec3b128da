"""The fingerprinting method and the verdict.

``degradation`` -> ``inversion`` (critical images) -> evidence: ``behaviour`` (the ``response`` and ``paper``
methods behind one protocol, with ``features``) and ``weights`` (lineage sketches), typed in ``evidence`` ->
``calibration`` (per-fingerprint nulls and the measured real-model nulls) -> ``fingerprint`` (+ ``references``)
-> ``fingerprint_file`` (+ ``fingerprint_schema``, ``signing``) -> ``verification``.
"""

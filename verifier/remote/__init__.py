"""Suspects reached over the network: the KServe v2 / Open Inference Protocol client (``kserve``) and the
:class:`~verifier.graph.suspect.Suspect` it becomes (``endpoint``)."""

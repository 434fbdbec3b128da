"""Many suspect models, in any supported format, against one or more owner fingerprints.

Data flow: :mod:`~verifier.auditing.discovery` reads the owners and turns files and folders into suspects
(a folder yields the files some exporter recognises); :mod:`~verifier.auditing.runner` answers the suspects
whose verdicts are all cached and hands the others to an engine (local worker processes, or Ray tasks in
:mod:`~verifier.auditing.ray_engine`); each runs a :class:`~verifier.auditing.worker.Worker`, which exports a
suspect if it is not ONNX (through the :class:`~verifier.auditing.convert.Converter` the API passes in, so no
layer below the API imports an exporter), loads it, and for every owner gathers its evidence and verdict, all
kept in :mod:`~verifier.auditing.cache`.  Rows come back as :class:`~verifier.auditing.results.AuditRow` and
make up an :class:`~verifier.auditing.results.AuditResult`, with its gate; :mod:`~verifier.auditing.table`,
:mod:`~verifier.auditing.results_json` and :mod:`~verifier.auditing.report` present it, and
:mod:`~verifier.auditing.config` reads ``verifier.toml``.

Anything that goes wrong with one file (unknown format, corrupt bytes, failed export, a model that outputs
NaN) becomes that row's error, never the audit's: only unusable owners or an empty suspect list stop it.
Suspects can also be inference endpoints (:class:`~verifier.remote.endpoint.EndpointSpec`): each is
questioned like a file's model, on behaviour only, its evidence never taken from the cache (the model behind a
URL can change), and becomes one row.
"""

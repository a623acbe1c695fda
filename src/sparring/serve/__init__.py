"""``sparring serve``: a model behind the BSI's operational measures, spoken to over the Open Inference Protocol.

API keys stored as hashes (:mod:`~sparring.serve.keys`), quotas and an append-only, hash-chained
audit log in SQLite (:mod:`~sparring.serve.audit`), strict request validation and output
hardening (:mod:`~sparring.serve.app`). :class:`~sparring.models.remote.RemoteClassifier`
attacks a deployment exactly as an outsider would.
"""

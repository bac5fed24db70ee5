"""Prefect flows over the parallelner library: the only package that imports Prefect.

- ``synthesize``: sources -> shards -> translate/project/quality -> one snapshot
- ``review_push`` / ``review_pull``: the human-review round trip through Label Studio
- ``release``: tag a snapshot with a release note
"""

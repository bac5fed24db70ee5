"""Versioned dataset snapshots: an Iceberg table of Parquet, tagged releases, exports.

- ``commit(records_or_table, run_id, replace=False)`` -> snapshot id (one per run / pull)
- ``create_tag(name, snapshot=None)`` -> release note (tags are immutable)
- ``load_snapshot(name_or_id, status=None, home=None)`` -> pyarrow Table
- ``export_snapshot(name_or_id, dir, status=None, fmt="parquet")`` / ``verify_export(dir)``:
  the Hugging Face layout (splits by instance, card with Hub YAML, privacy by default)
- ``to_hf_dataset(name_or_id, status=ACCEPTED)`` -> ``datasets.DatasetDict``;
  ``upload_export(dir, repo_id)`` pushes an export to a Hub dataset repo
"""

from parallelner.store.export import export_snapshot, read_export, verify_export
from parallelner.store.hub import to_hf_dataset, upload_export
from parallelner.store.read import diff_snapshots, load_snapshot
from parallelner.store.table import commit, list_snapshots, open_table
from parallelner.store.tags import create_tag, show, snapshot_stats, validate_tag_name

__all__ = [
    "commit",
    "create_tag",
    "diff_snapshots",
    "export_snapshot",
    "list_snapshots",
    "load_snapshot",
    "open_table",
    "read_export",
    "show",
    "snapshot_stats",
    "to_hf_dataset",
    "upload_export",
    "validate_tag_name",
    "verify_export",
]

"""`parallelner snapshot ...` run as a user runs it: the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_store import real_records, reviewed

from parallelner import errors as store_errors
from parallelner import store
from parallelner.settings import load_settings
from tests.processes import mount_tmpfs

CLI = str(Path(sys.executable).parent / "parallelner")


def cli(*args: str, home: Path | None = None, columns: int = 200) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARALLELNER_")}
    env["COLUMNS"] = str(columns)
    extra = ["--home", str(home)] if home is not None else []
    return subprocess.run(
        [CLI, "snapshot", *args, *extra], capture_output=True, text=True, env=env, timeout=120
    )


def fails_cleanly(res: subprocess.CompletedProcess, message: str) -> None:
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert message in " ".join(res.stderr.split())


@pytest.fixture
def home(tmp_path) -> Path:
    """A data directory with one synthesize run committed (25 real en->zh pairs)."""
    h = tmp_path / "home"
    store.commit(
        real_records("pud-en-zh.jsonl", 25, "run-1"), "run-1", settings=load_settings(home=h)
    )
    return h


def test_release_then_export_then_verify(home, tmp_path):
    res = cli("tag", "v1", "--json", home=home)
    assert res.returncode == 0, res.stderr
    note = json.loads(res.stdout)
    assert note["tag"] == "v1" and note["statistics"]["records"] == 25

    records = real_records("pud-en-zh.jsonl", 25, "run-1")
    store.commit(
        reviewed(records, "pull-1"), "pull-1", settings=load_settings(home=home), replace=True
    )

    snaps = json.loads(cli("list", "--json", home=home).stdout)
    assert [(s["run_id"], s["operation"]) for s in snaps] == [
        ("run-1", "append"),
        ("pull-1", "overwrite"),
    ]
    assert any(s["tags"] == ["v1"] for s in snaps)

    shown = json.loads(cli("show", "v1", "--json", home=home).stdout)
    assert shown["snapshot_id"] == note["snapshot_id"] and shown["tags"] == ["v1"]

    diff = json.loads(cli("diff", "v1", "main", "--json", home=home).stdout)
    n_review = sum(r.status == "review" for r in records)
    assert diff["changed"] == n_review and diff["added"] == diff["removed"] == 0
    assert diff["status_changes"] == {"review -> reviewed_accepted": n_review}

    out = tmp_path / "release-v1"
    res = cli(
        "export",
        "v1",
        str(out),
        "--status",
        "accepted,reviewed_accepted",
        "--format",
        "jsonl",
        home=home,
    )
    assert res.returncode == 0, res.stderr
    assert "checksums verified" in res.stdout
    lines = [
        line
        for f in sorted((out / "data").glob("*.jsonl"))  # one file set per split
        for line in f.read_text("utf-8").splitlines()
    ]
    assert len(lines) == sum(r.status == "accepted" for r in records)  # v1 predates the review
    assert cli("verify", str(out)).returncode == 0

    readme = out / "README.md"
    readme.write_text(readme.read_text("utf-8") + "edited\n", "utf-8")
    fails_cleanly(cli("verify", str(out)), "README.md: content changed")


def test_human_output(home):
    res = cli("tag", "v1", home=home)
    assert res.returncode == 0 and "tagged v1 -> snapshot" in res.stdout
    res = cli("list", home=home)
    assert res.returncode == 0 and "run-1" in res.stdout and "v1" in res.stdout
    res = cli("show", "v1", home=home)
    assert res.returncode == 0 and "acceptance rate" in res.stdout and "en->zh" in res.stdout


def test_list_counts_the_rows_a_pull_changed_not_the_files_it_rewrote(home):
    """A pull that replaces 2 of 25 rows shows ~2 (Iceberg's added-records says 25)."""
    records = real_records("pud-en-zh.jsonl", 25, "run-1")
    two = reviewed(records, "review-pull-1")[:2]
    assert len(two) == 2
    store.commit(two, "review-pull-1", settings=load_settings(home=home), replace=True)
    snaps = json.loads(cli("list", "--json", home=home).stdout)
    counts = [
        (s["run_id"], s["added_records"], s["changed_records"], s["removed_records"]) for s in snaps
    ]
    assert counts == [("run-1", 25, 0, 0), ("review-pull-1", 0, 2, 0)]
    assert snaps[-1]["total_records"] == 25
    table = cli("list", home=home, columns=80).stdout
    pull_line = next(line for line in table.splitlines() if "replace" in line)
    assert " ~2 " in pull_line and "+" not in pull_line


@pytest.mark.parametrize("command", [("list",), ("show", "main")])
def test_tables_fit_80_columns_with_whole_headers(home, command):
    assert cli("tag", "v1", home=home).returncode == 0
    store.commit(
        reviewed(real_records("pud-en-zh.jsonl", 25, "run-1"), "review-pull-20261125T093000Z"),
        "review-pull-20261125T093000Z",
        settings=load_settings(home=home),
        replace=True,
    )
    out = cli(*command, home=home, columns=80).stdout
    assert "…" not in out
    assert all(len(line) <= 80 for line in out.splitlines())
    if command == ("list",):
        for header in ("snapshot id", "committed UTC", "op", "run", "rows", "total", "tags"):
            assert header in out
    else:
        assert "reviewed_accepted" in out and "en->zh" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (("tag", "v 1"), "'v 1': not a valid tag name: it contains whitespace"),
        (("tag", "rel/v1"), "'rel/v1': not a valid tag name: it contains a path separator"),
        (("show", "v9"), "v9: no such tag or snapshot"),
        (("tag", "v2", "--snapshot", "42"), "42: no snapshot with this id"),
        (("export", "v9", "/nonexistent-dir-x"), "v9: no such tag or snapshot"),
        (("export", "main", "OUT", "--status", "acepted"), "unknown status acepted"),
        (
            ("export", "main", "OUT", "--splits", "train=0.5"),
            "proportions must be >= 0 and sum to 1",
        ),
    ],
)
def test_bad_input_is_one_clear_line(home, tmp_path, args, message):
    args = tuple(str(tmp_path / "out") if a == "OUT" else a for a in args)
    fails_cleanly(cli(*args, home=home), message)
    assert not (tmp_path / "out").exists()


def test_existing_tag_is_never_moved(home):
    assert cli("tag", "v1", home=home).returncode == 0
    store.commit(
        real_records("pud-en-zh.jsonl", 5, "run-2", offset=25),
        "run-2",
        settings=load_settings(home=home),
    )
    fails_cleanly(cli("tag", "v1", home=home), "v1: a tag with this name already exists")
    assert json.loads(cli("show", "v1", "--json", home=home).stdout)["statistics"]["records"] == 25


def test_export_into_non_empty_directory(home, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    fails_cleanly(cli("export", "main", str(out), home=home), "directory is not empty")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("below", ["out", "a/b/out"])
def test_export_below_a_regular_file_names_the_file(home, tmp_path, below):
    """Issue 25: export below a regular file said "File exists" (or "Not a directory")
    without saying which part of the path is a file; now one line names it."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    out = blocker / below
    res = cli("export", "main", str(out), home=home)
    fails_cleanly(res, f"{out}: cannot export here: {blocker} is a file, not a folder")
    assert len(res.stderr.strip().splitlines()) == 1
    assert blocker.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "notes.txt"]


def test_export_into_an_empty_mount_point_writes_into_it(home, tmp_path):
    """Issue 25: an empty mount point as the target failed with EBUSY (the finished export
    is renamed over the target, and a mount point cannot be removed or renamed over).
    The export is built inside it and moved into place there. A real tmpfs: needs root."""
    out = tmp_path / "mnt"
    out.mkdir()
    mount_tmpfs(out, "16m")
    try:
        res = cli("export", "main", str(out), "--json", home=home)
        assert res.returncode == 0, res.stderr
        assert os.path.ismount(out)
        assert sorted(p.name for p in out.iterdir()) == [
            "README.md", "SHA256SUMS", "data", "metadata.json"
        ]  # fmt: skip
        assert store.read_export(out).num_rows == 25  # verified against its checksums
        assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "mnt"]  # no temp left
    finally:
        subprocess.run(["umount", "-l", str(out)], capture_output=True)


def test_catalog_that_is_not_a_catalog(tmp_path):
    (tmp_path / "catalog.db").write_text("not sqlite")
    fails_cleanly(cli("list", home=tmp_path), "catalog.db: not a catalog")


@pytest.mark.parametrize("command", ["list", "show", "diff", "tag", "export", "upload", "verify"])
def test_every_command_has_help_with_an_example(command):
    res = cli(command, "--help")
    assert res.returncode == 0 and "Usage" in res.stdout
    assert f"Example: parallelner snapshot {command} " in res.stdout


def test_a_deleted_catalog_is_refused_then_recovered_from_the_warehouse(home):
    """Issue 25 case 4: ``catalog.db`` deleted while the warehouse holds snapshots and tags.

    The next commit (a run's) would have started a new, empty table silently; it is
    refused in one line that names the catalog and the warehouse and says how to recover,
    and ``snapshot recover-catalog`` brings back every snapshot and tag.
    """
    settings = load_settings(home=home)
    store.create_tag("v1", settings=settings)
    store.commit(real_records("pud-en-zh.jsonl", 5, "run-2", offset=25), "run-2", settings=settings)
    (home / "catalog.db").unlink()

    with pytest.raises(store_errors.StoreError) as refused:  # what a run's commit does
        store.commit(
            real_records("pud-en-zh.jsonl", 3, "run-3", offset=30), "run-3", settings=settings
        )
    message = str(refused.value)
    assert str(home / "catalog.db") in message and str(home / "warehouse") in message
    assert "snapshot recover-catalog" in message and "\n" not in message
    assert not (home / "catalog.db").exists()  # nothing was written
    fails_cleanly(cli("list", home=home), "holds one (its latest metadata")

    res = cli("recover-catalog", "--json", home=home)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["tags"] == ["v1"]
    snaps = store.list_snapshots(settings)
    assert [s["run_id"] for s in snaps] == ["run-1", "run-2"] and snaps[0]["tags"] == ["v1"]
    fails_cleanly(cli("recover-catalog", home=home), "holds the table already")

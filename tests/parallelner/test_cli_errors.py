"""A user's mistake on the command line is one clear message and exit code 2, never a
traceback: usage errors (Typer raises its own copies of click's exceptions) and sources
that cannot be read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "parallelner")
SAMPLE = REPO / "examples" / "wikineural-en-sample.conllu"


def _cli(*args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()):
    return subprocess.run(
        [*prefix, CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--to", "zh"], "Missing argument"),
        (["run", str(SAMPLE), "--to", "zh", "--workers", "0"], "Invalid value for '--workers'"),
        (["run", str(SAMPLE), "--to", "zh", "--shard-size", "0"], "--shard-size"),
        (["inspect", str(SAMPLE), "--format", "bogus"], "Invalid value for '--format'"),
        (["run", str(SAMPLE), "--to", "zh", "--no-such-flag"], "No such option"),
    ],
    ids=["run without source", "workers 0", "shard size 0", "inspect bad format", "bad flag"],
)
def test_usage_errors_are_a_message_not_a_traceback(args, message, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARALLELNER_")}
    env["PARALLELNER_HOME"] = str(tmp_path / "home")
    res = _cli(*args, env=env)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert message in res.stderr
    assert not (tmp_path / "home").exists()  # nothing started


# root reads any file whatever its mode: as root, the CLI runs without the capabilities
# that let it (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH)
_NO_DAC = "-dac_override,-dac_read_search"
_AS_USER: tuple[str, ...] = (
    ("setpriv", f"--inh-caps={_NO_DAC}", f"--bounding-set={_NO_DAC}") if os.geteuid() == 0 else ()
)


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="setpriv")
def test_an_unreadable_source_is_one_line(tmp_path):
    src = tmp_path / "secret.conllu"
    shutil.copy(SAMPLE, src)
    src.chmod(0o000)
    prefix = _AS_USER
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARALLELNER_")}
    env["PARALLELNER_HOME"] = str(tmp_path / "home")
    env["PARALLELNER_LLM_BASE_URL"] = "http://127.0.0.1:9/v1"  # never reached
    res = _cli("run", str(src), "--to", "zh", env=env, prefix=prefix)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    # the argument's own check (click's Path type) says it, as a usage error
    assert f"path '{src}' is not readable" in res.stderr


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="setpriv")
def test_check_sources_names_every_bad_source(tmp_path):
    from parallelner.errors import ConfigError
    from parallelner.pipeline import check_sources

    locked = tmp_path / "locked.conllu"
    shutil.copy(SAMPLE, locked)
    locked.chmod(0o000)
    code = (
        "import sys; from parallelner.pipeline import check_sources\n"
        "try:\n    check_sources([sys.argv[1]])\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
    )
    res = subprocess.run([*_AS_USER, sys.executable, "-c", code, str(locked)],
                         capture_output=True, text=True, cwd=REPO, env=dict(os.environ))  # fmt: skip
    assert (
        res.stdout.strip() == f"ConfigError cannot read source file: {locked} (Permission denied)"
    )
    with pytest.raises(ConfigError) as err:
        check_sources([tmp_path, tmp_path / "none.conllu", SAMPLE])
    assert str(err.value) == (
        f"source file not found: {tmp_path / 'none.conllu'}; "
        f"source is a directory, not a file: {tmp_path}"
    )
    with pytest.raises(ConfigError, match="no source file given"):
        check_sources([])

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


def _fail_unexpectedly(capsys) -> tuple[Path, str]:
    """The CLI's handler of an unexpected failure: the traceback file and the error line."""
    import parallelner_cli

    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        with pytest.raises(SystemExit) as stop:
            parallelner_cli._unexpected(exc)
    assert stop.value.code == 1
    line = " ".join(capsys.readouterr().err.split())
    where = line.split("(traceback in ", 1)[1].split(";", 1)[0]
    return Path(where), line


def test_a_traceback_never_follows_a_symlink_planted_in_the_temp_folder(
    tmp_path, monkeypatch, capsys
):
    """The home cannot hold it: a new private file in the temp folder, not /tmp/logs/..."""
    import tempfile

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    tmp = tmp_path / "tmp"
    (tmp / "logs").mkdir(parents=True)
    (tmp / "logs" / "last-error.txt").symlink_to(victim)
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    monkeypatch.setenv("PARALLELNER_HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    where, line = _fail_unexpectedly(capsys)
    assert "unexpected failure" in line and "RuntimeError: boom" in line
    assert victim.read_text() == "keep me\n"
    assert where.parent == tmp and not where.is_symlink()
    assert where.stat().st_mode & 0o777 == 0o600
    assert "Traceback" in where.read_text()


def test_a_traceback_in_the_home_replaces_a_planted_symlink(tmp_path, monkeypatch, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    logs = tmp_path / "home" / "logs"
    logs.mkdir(parents=True)
    (logs / "last-error.txt").symlink_to(victim)
    monkeypatch.setenv("PARALLELNER_HOME", str(tmp_path / "home"))
    where, _ = _fail_unexpectedly(capsys)
    assert where == logs / "last-error.txt" and not where.is_symlink()
    assert victim.read_text() == "keep me\n"
    assert where.stat().st_mode & 0o777 == 0o600
    assert "RuntimeError: boom" in where.read_text()
    assert [p.name for p in logs.iterdir()] == ["last-error.txt"]  # no temporary left


def _error_lines(res: subprocess.CompletedProcess) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.startswith("error:")]


def test_one_instance_id_in_two_sources_is_refused_before_any_request(tmp_path):
    """Two files of one name (their instances get the same ids): one line, exit 2, no
    LLM request paid for rows that could never be committed."""
    from parallelner.testing.openai_server import OpenAIServer
    from tests.flows.helpers import run_cli, run_env

    a, b = tmp_path / "a" / SAMPLE.name, tmp_path / "b" / SAMPLE.name
    for copy in (a, b):
        copy.parent.mkdir()
        shutil.copy(SAMPLE, copy)
    with OpenAIServer(model="test-model") as srv:
        res = run_cli(str(a), str(b), "--to", "zh", env=run_env(tmp_path / "home", srv))
        asked = len(srv.requests)  # completions only (GET /models is not logged)
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    (line,) = _error_lines(res)
    said = " ".join(res.stderr.split())
    assert (
        f"{b}: instance 1 has the id 'wikineural-wikineural-en-sample-1' of instance 1 of {a}"
        in said
    )
    assert said.endswith("[duplicate_id]")
    assert asked == 0


@pytest.mark.parametrize("second", ["same", "other path"])
def test_one_file_named_twice_is_refused(tmp_path, second):
    twice = str(SAMPLE) if second == "same" else str(tmp_path / "link.conllu")
    if second != "same":
        os.symlink(SAMPLE, twice)
    res = _cli("run", str(SAMPLE), twice, "--to", "zh",
               env={**os.environ, "PARALLELNER_HOME": str(tmp_path / "home"),
                    "PARALLELNER_LLM_BASE_URL": "http://127.0.0.1:9/v1"})  # fmt: skip
    assert res.returncode == 2, res.stderr
    (line,) = _error_lines(res)
    assert "source file named twice" in " ".join(res.stderr.split())


def test_from_and_to_the_same_language_is_one_line(tmp_path):
    env = {**os.environ, "PARALLELNER_HOME": str(tmp_path / "home"),
           "PARALLELNER_LLM_BASE_URL": "http://127.0.0.1:9/v1"}  # fmt: skip
    res = _cli("run", str(SAMPLE), "--from", "zh", "--to", "zh", env=env)
    assert res.returncode == 2, res.stderr
    (line,) = _error_lines(res)
    assert "the source language is the target language" in line


# -- issue 25, messages: what a user reads names the file (and line) and says what to do --


def test_a_utf16_source_is_named_once_as_utf16(tmp_path):
    """UTF-16 input was sniffed as CoNLL, its first line quarantined "invalid_utf8" (the
    rest read as garbage): one line now names the file and the encoding to save it in."""
    src = tmp_path / "notepad.conllu"
    src.write_bytes(SAMPLE.read_text("utf-8").encode("utf-16"))  # with its byte-order mark
    env = {**os.environ, "PARALLELNER_HOME": str(tmp_path / "home")}
    res = _cli("inspect", str(src), env=env)
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    (line,) = _error_lines(res)
    assert f"{src}: the file is UTF-16 (a byte-order mark" in line
    assert "save it as UTF-8" in line and "Traceback" not in res.stderr


def test_a_record_already_in_the_target_language_is_named_by_file_and_line(tmp_path):
    """One record of a span JSONL file in the target language refused the whole run with
    the file's name only; the message now says which line, before any LLM request."""
    import json

    from parallelner.errors import ConfigError
    from parallelner.pipeline import plan_run
    from parallelner.settings import load_settings

    records = [
        {"id": "a", "lang": "en", "text": "Paris is nice.", "entities": []},
        {"id": "b", "lang": "en", "text": "Rome is old.", "entities": []},
        {"id": "c", "lang": "zh", "text": "北京很大。", "entities": []},
    ]
    src = tmp_path / "mixed.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    settings = load_settings(None, home=tmp_path / "home", llm_base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError) as refused:
        plan_run([src], "zh", settings, dataset="conll")
    message = str(refused.value)
    assert message.startswith(f"{src}:3: instance 'c' is in 'zh', the target language")
    assert "nothing was sent to the LLM" in message


def test_a_symlink_loop_is_called_a_loop_not_not_found(tmp_path):
    a, b = tmp_path / "a.conllu", tmp_path / "b.conllu"
    a.symlink_to(b)
    b.symlink_to(a)
    env = {**os.environ, "PARALLELNER_HOME": str(tmp_path / "home"),
           "PARALLELNER_LLM_BASE_URL": "http://127.0.0.1:9/v1"}  # fmt: skip
    res = _cli("run", str(a), "--to", "zh", env=env)
    assert res.returncode == 2, res.stderr
    (line,) = _error_lines(res)
    assert f"{a} (a symlink loop" in line and "not found" not in line


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="setpriv")
def test_a_read_only_home_is_one_line_naming_it(tmp_path):
    """A home this user cannot write gave "unexpected failure: OperationalError" (from
    SQLite, deep in the run); it is refused first, in one line naming the folder."""
    from parallelner.testing.openai_server import OpenAIServer

    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    with OpenAIServer(model="test-model") as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARALLELNER_")}
        env.update(PARALLELNER_HOME=str(home), PARALLELNER_LLM_BASE_URL=srv.base_url,
                   PARALLELNER_LLM_MODEL="test-model", PREFECT_HOME=str(tmp_path / "prefect"))  # fmt: skip
        res = _cli("run", str(SAMPLE), "--to", "zh", env=env, prefix=_AS_USER)
        asked = srv.stats()["requests"]
    assert res.returncode == 2, res.stderr[-3000:]
    (line,) = _error_lines(res)
    assert f"{home}: the home folder is read-only" in line and "PARALLELNER_HOME" in line
    assert "Traceback" not in res.stderr and asked == 0

"""Screenshot of a task's labeling page, through headless Chromium (docs/img).

    python -m annotation.screenshot --url http://127.0.0.1:8080 --user EMAIL \
        --password PASS --project 1 --task 4 --out docs/img/labeling-interface.png

Drives Debian's ``chromium`` over the DevTools protocol: logs in with the form, opens
the task in the project's data manager and captures the page. The password is read
from ``--password`` or ``LABEL_STUDIO_PASSWORD`` and never printed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from websockets.sync.client import connect as ws_connect

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


class _Page:
    def __init__(self, ws_url: str):
        self._ws = ws_connect(ws_url, max_size=None, open_timeout=30)
        self._ids = itertools.count(1)

    def call(self, method: str, **params: object) -> dict:
        n = next(self._ids)
        self._ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv(timeout=60))
            if msg.get("id") == n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def close(self) -> None:
        self._ws.close()

    def js(self, expression: str) -> object:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.js(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied: {expression}")
            time.sleep(0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def chromium_page(width: int = 1400, height: int = 1100,
                  chromium: str = "chromium") -> Iterator[_Page]:  # fmt: skip
    """Headless Chromium showing ``about:blank``, driven over the DevTools protocol."""
    exe = shutil.which(chromium)
    if exe is None:
        raise RuntimeError("chromium not found: run `make services` (apt-get install chromium)")
    port = _free_port()
    # Chromium's helper processes may still write to the profile after the browser
    # exits: the whole process group is killed, and a late file does not fail cleanup
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [
                exe,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--remote-debugging-port={port}",
                f"--window-size={width},{height}",
                "about:blank",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        page: _Page | None = None
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as r:
                        pages = [p for p in json.load(r) if p.get("type") == "page"]
                    if pages:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("chromium did not open its DevTools port")
                time.sleep(0.5)
            page = _Page(pages[0]["webSocketDebuggerUrl"])
            page.call("Page.enable")
            page.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                      deviceScaleFactor=1, mobile=False)  # fmt: skip
            yield page
        finally:
            if page is not None:
                page.close()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


@contextmanager
def labeling_page(url: str, user: str, password: str, project: int, task: int | None,
                  width: int = 1400, height: int = 1100,
                  chromium: str = "chromium") -> Iterator[_Page]:  # fmt: skip
    """Headless Chromium logged in to Label Studio, showing ``task`` ready to label
    (``task=None``: the project's Data Manager table)."""
    with chromium_page(width, height, chromium) as page:
        page.call("Page.navigate", url=f"{url}/user/login")
        page.wait_for("!!document.querySelector('input[name=email]')")
        page.js(
            "(() => { const f = document.querySelector('form');"
            f" f.querySelector('input[name=email]').value = {json.dumps(user)};"
            f" f.querySelector('input[name=password]').value = {json.dumps(password)};"
            " f.submit(); })()"
        )
        page.wait_for("!location.pathname.startsWith('/user/login')")
        if task is None:  # the Data Manager's task table
            page.call("Page.navigate", url=f"{url}/projects/{project}/data")
            page.wait_for("document.querySelectorAll('.lsf-table__cell').length > 2", 120)
        else:
            page.call("Page.navigate", url=f"{url}/projects/{project}/data?task={task}")
            page.wait_for("!!document.querySelector('.lsf-richtext__container .htx-highlight, "
                          ".lsf-richtext__line')", 120)  # fmt: skip
        time.sleep(3)  # let fonts, regions and the side panels settle
        yield page


def capture(url: str, user: str, password: str, project: int, task: int, out: Path,
            width: int = 1400, height: int = 1100) -> Path:  # fmt: skip
    """Log in, open ``task`` of ``project`` for labeling and save a PNG screenshot."""
    with labeling_page(url, user, password, project, task, width, height) as page:
        shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(shot["data"]))
    return out


def main() -> None:
    """Command-line entry: see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", default=os.environ.get("LABEL_STUDIO_PASSWORD"))
    p.add_argument("--project", type=int, required=True)
    p.add_argument("--task", type=int, required=True)
    p.add_argument("--out", type=Path, default=Path("docs/img/labeling-interface.png"))
    a = p.parse_args()
    if not a.password:
        raise SystemExit("give --password or LABEL_STUDIO_PASSWORD")
    print(capture(a.url.rstrip("/"), a.user, a.password, a.project, a.task, a.out))


if __name__ == "__main__":
    main()

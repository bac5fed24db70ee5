"""``vllm run-batch`` for machines without vLLM: the same command line and file formats,
answered by an OpenAI-compatible server (the tests' stand-in) instead of a GPU.

    python -m parallelner.testing.fake_vllm --server http://127.0.0.1:PORT/v1 \\
        -i requests.jsonl -o results.jsonl --model test-model

Each input line is checked the way vLLM's ``BatchRequestInput`` checks it (``custom_id``
a string, ``method`` POST, ``url`` one of vLLM's endpoints, ``body`` an object) -- a line
that fails stops the whole run with exit 1, as vLLM does -- then answered by POSTing its
``body`` (with ``--model``) to the server, and written in vLLM's ``BatchRequestOutput``
format: ``{"id", "custom_id", "response": {"status_code", "request_id", "body"},
"error"}``. ``--sleep`` seconds before the output is written (a slow job).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

URLS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/score")


def check_line(n: int, line: str) -> dict[str, Any]:
    """One input line as vLLM reads it; ValueError naming the line otherwise."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {n}: not JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"line {n}: not an object")
    if not isinstance(obj.get("custom_id"), str):
        raise ValueError(f"line {n}: custom_id must be a string")
    if obj.get("method") != "POST":
        raise ValueError(f"line {n}: method must be POST")
    if obj.get("url") not in URLS:
        raise ValueError(f"line {n}: url {obj.get('url')!r} is not one of {URLS}")
    if not isinstance(obj.get("body"), dict):
        raise ValueError(f"line {n}: body must be an object")
    return obj


def answer(server: str, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        server.rstrip("/") + url.removeprefix("/v1"),
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read())
        except ValueError:
            return exc.code, {"error": {"message": f"HTTP {exc.code}"}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_batch", nargs="?", help="the subcommand word (run-batch), ignored")
    ap.add_argument("--server", required=True)
    ap.add_argument("-i", "--input-file", required=True)
    ap.add_argument("-o", "--output-file", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--sleep", type=float, default=0.0)
    args = ap.parse_args(argv)
    with open(args.input_file, encoding="utf-8") as fh:
        try:
            lines = [check_line(n, ln) for n, ln in enumerate(fh, 1) if ln.strip()]
        except ValueError as exc:
            print(f"vllm run-batch: {args.input_file}: {exc}", file=sys.stderr)
            return 1
    out = []
    for line in lines:
        body = {**line["body"], "model": args.model}
        status, reply = answer(args.server, line["url"], body)
        rid = f"vllm-batch-{uuid.uuid4().hex}"
        out.append({"id": f"vllm-{uuid.uuid4().hex}", "custom_id": line["custom_id"],
                    "response": {"status_code": status, "request_id": rid, "body": reply},
                    "error": None})  # fmt: skip
    time.sleep(args.sleep)
    with open(args.output_file, "w", encoding="utf-8") as fh:
        for o in out:
            fh.write(json.dumps(o, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`parallelner translate`: stage 1 on a file — each sentence and its mentions, one LLM call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from parallelner_cli._common import (
    ConfigOption,
    HomeOption,
    JsonOption,
    LLMBaseURLOption,
    LLMModelOption,
    MaxInFlightOption,
    console,
    print_json,
    settings_from,
)

__all__ = ["translate_file", "register"]


def translate_file(
    input_path: Path,
    out_path: Path,
    tgt_lang: str,
    settings: Any,
    *,
    format: str | None = None,  # noqa: A002 - the user-facing name
    lang: str | None = None,
    limit: int | None = None,
    write_batch: Path | None = None,
    read_batch: Path | None = None,
) -> dict[str, Any]:
    """Read ``input_path`` with the project's readers and translate it; return a summary.

    Inputs the reader quarantines go to ``OUT.quarantine.jsonl`` with their reasons.
    ``write_batch``: only write the OpenAI batch JSONL for the instances (no LLM call).
    ``read_batch``: judge a batch output file instead of calling the LLM.
    """
    import itertools

    from parallelner.jobs import translate as tr
    from parallelner.llm.batch import read_batch_results
    from parallelner.readers import ReadReport, read_instances
    from parallelner.writers import QuarantineWriter

    report = ReadReport(path=str(input_path))
    qpath = out_path.with_name(out_path.stem + ".quarantine.jsonl")
    with QuarantineWriter(qpath) as sink:
        instances = list(
            itertools.islice(
                read_instances(
                    input_path,
                    format,
                    report=report,
                    quarantine=sink.write,
                    lang=lang,
                    max_chars=settings.max_sentence_chars,
                ),  # fmt: skip
                limit,
            )
        )
    read = {
        "sentences": len(instances),
        "quarantined": report.quarantined_total,
        "quarantine_file": str(qpath) if report.quarantined_total else None,
    }
    if not report.quarantined_total:
        qpath.unlink(missing_ok=True)
    if write_batch is not None:
        n = tr.write_translate_batch(instances, tgt_lang, settings, write_batch)
        return {"read": read, "batch_requests": n, "batch_file": str(write_batch)}
    if read_batch is not None:
        results = read_batch_results(read_batch)
        counts: dict[str, int] = {"translated": 0, "failed": 0}
        reasons: dict[str, int] = {}
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with out_path.open("w", encoding="utf-8") as fh:
            for inst, res in tr.results_from_batch(instances, results, tgt_lang, settings):
                row = tr.result_to_json(inst, res)
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                counts[row["status"]] += 1
                for r in row["reasons"]:
                    reasons[r] = reasons.get(r, 0) + 1
        return {"read": read, "instances": len(instances), **counts, "reasons": reasons,
                "output": str(out_path)}  # fmt: skip
    summary = tr.run(instances, out_path, tgt_lang, settings)
    return {"read": read, **summary}


def translate_cmd(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="Corpus file: CoNLL/WikiNEuRal, CLUENER JSON, "
            "span JSONL or Parquet (format detected; see --format).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output JSONL: one line per input instance.")
    ],
    to: Annotated[str, typer.Option("--to", help="Target language (BCP-47), e.g. zh, en, de.")],
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Source language when the file does not say "
            "(default: en for CoNLL, zh for CLUENER).",
            show_default=False,
        ),
    ] = None,
    format_: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="conll | wikineural | cluener | jsonl | parquet (default: detected).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", min=1, help="Translate only the first N instances.", show_default=False
        ),
    ] = None,
    fallback_model: Annotated[
        str | None,
        typer.Option(
            "--fallback-model",
            help="Model that retries the instances the first "
            "model failed \\[env PARALLELNER_LLM_FALLBACK_MODEL].",
            show_default=False,
        ),
    ] = None,
    write_batch: Annotated[
        Path | None,
        typer.Option(
            "--write-batch",
            help="Write the requests as OpenAI batch JSONL "
            "(custom_id = instance id) for `vllm run-batch` / the Batch API, "
            "and stop.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    read_batch: Annotated[
        Path | None,
        typer.Option(
            "--read-batch",
            help="Read a batch output file instead of calling the LLM.",
            show_default=False,
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    config: ConfigOption = None,
    home: HomeOption = None,
    llm_base_url: LLMBaseURLOption = None,
    llm_model: LLMModelOption = None,
    max_in_flight: MaxInFlightOption = None,
    json_: JsonOption = False,
) -> None:
    """Translate each sentence [bold]together with its entity mentions[/] into --to.

    One LLM call per sentence, many in flight; replies are validated JSON, re-asked when invalid, incomplete, truncated or in the wrong language, and cached under --home, so a re-run (or a resumed crash) only asks what was not answered yet.

    Every input ends in exactly one place: the output (status [green]translated[/], or [red]failed[/] with a reason and the raw reply) or OUT.quarantine.jsonl when the reader could not use it.

    Without --llm-base-url the embedded local model (Gemma 3 270M on the CPU) answers: tiny and poor at Chinese, for demos; point --llm-base-url at vLLM for real runs.

    Example: [cyan]parallelner translate examples/cluener-zh-sample.jsonl -o out/zh-en.jsonl --to en[/]
    """
    settings = settings_from(
        config, home=home, llm_base_url=llm_base_url, llm_model=llm_model,
        llm_max_in_flight=max_in_flight, llm_fallback_model=fallback_model,
    )  # fmt: skip
    summary = translate_file(
        input_path, out, to, settings, format=format_, lang=from_, limit=limit,
        write_batch=write_batch, read_batch=read_batch,
    )  # fmt: skip
    transient = _transient_failures(summary)
    if json_:
        print_json(summary)
    else:
        _print_summary(summary)
    if transient:
        from parallelner.errors import UnfinishedRun

        raise UnfinishedRun(
            f"{transient} sentences failed because the LLM server could not be reached or "
            f"kept failing; run the same command again when it answers (replies already "
            f"received come from the cache)"
        )


def _transient_failures(summary: dict[str, Any]) -> int:
    from parallelner.pipeline import TRANSIENT_REASONS

    reasons = summary.get("reasons") or {}
    return sum(n for r, n in reasons.items() if r in {t.value for t in TRANSIENT_REASONS})


def _print_summary(summary: dict[str, Any]) -> None:
    read = summary["read"]
    console.print(
        f"read {read['sentences']} sentences ({read['quarantined']} quarantined)", highlight=False
    )
    if "batch_file" in summary:
        console.print(
            f"wrote {summary['batch_requests']} batch requests to {summary['batch_file']}"
        )
        return
    console.print(
        f"[green]{summary['translated']} translated[/], [red]{summary['failed']} failed[/] "
        f"-> {summary['output']}",
        highlight=False,
    )
    for reason, n in summary.get("reasons", {}).items():
        console.print(f"  {reason}: {n}", highlight=False)
    usage = summary.get("usage")
    if usage:
        console.print(
            f"LLM: {usage['requests']} requests, {usage['cache_hits']} cache hits, "
            f"{usage['retries']} retries, {usage['reasks']} re-asks, "
            f"{usage['prompt_tokens']}+{usage['completion_tokens']} tokens, "
            f"p50 {usage['latency_p50_s']} s",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    app.command("translate")(translate_cmd)

"""`parallelner train ...`: snapshot -> instruction data -> LoRA SFT -> evaluation.

Thin commands over the ``training`` package, imported inside each command so the rest
of the CLI never loads torch. Needs the train extra: ``pip install -e '.[train]'``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from parallelner.errors import ConfigError
from parallelner_cli._common import (
    HomeOption,
    JsonOption,
    console,
    console_err,
    print_json,
    settings_from,
)

train_app = typer.Typer(
    help="Train on a snapshot (KnowCoder-X alignment tuning): build instruction data, "
    "LoRA SFT, evaluate the generated code. Needs `pip install -e '.\\[train]'`.",
    no_args_is_help=True,
)

TrainConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Training config YAML (see "
        "training/configs/lora-sft.yaml); default: built-in defaults.",
        show_default=False,
    ),
]


def _need_training() -> None:
    try:
        import transformers  # noqa: F401

        import training  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"the train extra is not installed ({exc.name}): pip install -e '.[train]'"
        ) from None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _config(path: Path | None, **overrides):
    from training.config import load_config

    return load_config(path, **overrides)


@train_app.command("build")
def build(
    snapshot: Annotated[
        str,
        typer.Option(
            "--snapshot", "-s", help="Snapshot tag (or id) to build from.", show_default=False
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output directory (new or empty): train.jsonl, dev.jsonl, manifest.json.",
            show_default=False,
        ),
    ],
    config: TrainConfigOption = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Build code-style instruction data from the accepted pairs of a snapshot.

    Per pair: NER on the source and the target sentence (KnowCoder format, sampled schema
    with negatives) and translated instance prediction in both directions. The split is
    by source instance id; manifest.json records the snapshot and every count.
    """
    _need_training()
    from training.build import build_from_snapshot

    cfg = _config(config)
    settings = settings_from(None, home=home)
    manifest = build_from_snapshot(snapshot, out, cfg.build, home=settings.home)
    if json_:
        print_json(manifest)
        return
    console.print(f"[bold]{out}[/]: instruction data of snapshot [bold]{snapshot}[/]")
    console.print(
        f"pairs used: {manifest['records']['used']} of {manifest['records']['read']}"
        f"  instances train/dev: {manifest['instances']['train']}/"
        f"{manifest['instances']['dev']}"
    )
    for split in ("train", "dev"):
        parts = ", ".join(f"{k} {v}" for k, v in manifest["examples"][split].items())
        console.print(f"{split}: {parts}")


@train_app.command("tiny-model")
def tiny_model(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Build directory whose train.jsonl the tokenizer is trained on.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Where to save model + tokenizer.", show_default=False),
    ],
    hidden: Annotated[int, typer.Option(help="Hidden size.", min=8)] = 64,
    layers: Annotated[int, typer.Option(help="Decoder layers.", min=1)] = 2,
    vocab_size: Annotated[int, typer.Option(help="BPE vocabulary size.", min=300)] = 2000,
) -> None:
    """Make a tiny random Llama + a BPE tokenizer trained on the data (no download).

    For trying the pipeline on a CPU (training/configs/tiny-cpu.yaml points at
    runs/tiny-model); its scores mean nothing.
    """
    _need_training()
    from training.build import read_examples
    from training.tiny import make_tiny_model

    texts = [e.prompt + e.completion for e in read_examples(data / "train.jsonl")]
    make_tiny_model(
        out, texts, vocab_size=vocab_size, hidden=hidden, layers=layers, heads=max(1, hidden // 16)
    )
    console.print(f"tiny model saved to [bold]{out}[/]")


@train_app.command("run")
def run(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Build directory (train.jsonl, dev.jsonl, manifest.json).",
            show_default=False,
        ),
    ],
    config: TrainConfigOption = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", help="Override train.output_dir.", show_default=False),
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option("--max-steps", help="Override train.max_steps.", show_default=False),
    ] = None,
    resume: Annotated[
        bool | None,
        typer.Option(
            "--resume/--no-resume",
            help="Continue from the newest checkpoint [train.resume].",
            show_default=False,
        ),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """LoRA SFT of the base model on the instruction data (loss on the answer only).

    Checks device, base model and data before any long work. Checkpoints every
    train.save_steps; the adapter lands in OUTPUT_DIR/adapter with train_report.json.

    Several GPUs: `accelerate launch --config_file training/configs/accelerate/... -m
    training.sft CONFIG DATA`.
    """
    _need_training()
    from training.sft import train

    cfg = _config(
        config,
        **{"train.output_dir": output_dir, "train.max_steps": max_steps, "train.resume": resume},
    )
    report = train(cfg, data, log=lambda m: console_err.print(m, highlight=False, markup=False))
    if json_:
        print_json(report)
        return
    console.print(
        f"steps {report['global_step']}  train loss {_fmt(report['train_loss'])}  "
        f"dev loss {_fmt(report['dev_loss'])}  adapter [bold]{report['adapter']}[/]"
    )


@train_app.command("eval")
def eval_(
    config: TrainConfigOption = None,
    adapter: Annotated[
        Path | None,
        typer.Option(
            "--adapter",
            help="LoRA adapter directory (default: the base model alone).",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Build directory: evaluates its dev.jsonl (held-out pairs).",
            show_default=False,
        ),
    ] = None,
    input_: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help="NER file to evaluate on instead: span JSONL, CoNLL / WikiNEuRal, CLUENER, "
            "Parquet.",
            show_default=False,
        ),
    ] = None,
    format_: Annotated[
        str | None,
        typer.Option("--format", help="Format of --input (default: detected).", show_default=False),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="Label map of --input (wikineural, cluener, ontonotes...); default: the "
            "file's own dataset.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write predictions.jsonl and eval_report.json here.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Only the first N examples.", show_default=False)
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Generate, parse the code with ast (never eval) and report strict span+type P/R/F1.

    Per language, dataset and task with a per-class breakdown; malformed replies count as
    empty predictions and are counted by kind.
    """
    _need_training()
    from training.build import read_examples
    from training.evaluate import evaluate, examples_from_file

    if (data is None) == (input_ is None):
        raise ConfigError("give exactly one of --data (a build directory) or --input (an NER file)")
    cfg = _config(config, **{"eval.limit": limit})
    counts: dict = {}
    if data is not None:
        examples = read_examples(data / "dev.jsonl")
    else:
        examples, counts = examples_from_file(input_, dataset, format_)
    if not examples:
        where = data / "dev.jsonl" if data is not None else input_
        raise ConfigError(f"{where}: no examples to evaluate (build with build.dev_ratio > 0)")
    report = evaluate(cfg, examples, adapter, out, counts)
    if json_:
        print_json(report)
        return
    from rich.table import Table

    table = Table(title="strict span+type")
    for col in ("group", "examples", "P", "R", "F1", "malformed"):
        table.add_column(col)
    rows = [("overall", report["overall"])]
    for key in ("by_lang", "by_dataset", "by_task"):
        rows += [(f"{key[3:]}={k}", v) for k, v in report[key].items()]
    for name, r in rows:
        table.add_row(
            name,
            str(r["examples"]),
            f"{r['precision']:.3f}",
            f"{r['recall']:.3f}",
            f"{r['f1']:.3f}",
            str(r["malformed"]),
        )
    console.print(table)
    console.print(json.dumps(report["counts"]))


@train_app.command("merge")
def merge(
    adapter: Annotated[
        Path, typer.Option("--adapter", help="LoRA adapter directory.", show_default=False)
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Where to save the merged model.", show_default=False),
    ],
    config: TrainConfigOption = None,
) -> None:
    """Merge the LoRA adapter into the base model and save a plain model (for vLLM etc.)."""
    _need_training()
    from training.modeling import merge_adapter

    cfg = _config(config)
    console.print(f"merged model saved to [bold]{merge_adapter(cfg.model, adapter, out)}[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")

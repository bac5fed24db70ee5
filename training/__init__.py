"""KnowCoder-X alignment tuning from a ParallelNER snapshot.

snapshot -> instruction data (``training.build``: code-style NER on both sides and the
translated instance prediction task in both directions) -> LoRA SFT (``training.sft``)
-> evaluation of the generated code (``training.evaluate``, scored by ``training.metrics``).
Imports ``parallelner`` and ``schemas``, never ``flows``. Heavy libraries (torch,
transformers, peft) are imported inside the functions that need them; install them with
``pip install -e '.[train]'``.
"""

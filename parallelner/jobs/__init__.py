"""Single-stage file jobs: ``parallelner translate`` and ``parallelner project`` (file to
file, through one LLM client), and the batch-file edges of stage 1."""

"""The unified IE ontology (KnowCoder-X style classes), label maps, code prompts and parsing.

The bottom of the dependency graph: nothing here imports ``parallelner``.
"""

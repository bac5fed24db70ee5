"""The LLM layer: one client for vLLM / OpenAI / the embedded local model, its reply
cache, the local backend and the offline batch path."""

from parallelner.llm.client import ChatOutcome, LLMClient, RequestFailed, Usage

__all__ = ["LLMClient", "ChatOutcome", "RequestFailed", "Usage"]

"""Which backend answers a client's questions, chosen in one place.

- **chat** (``base_url`` set: vLLM, the OpenAI API, any OpenAI-compatible server): one JSON
  chat request per question (``parallelner.llm.ask.ChatBackend``);
- **few-shot** (no ``base_url``): the embedded local *base* model, llama.cpp's server
  started for the client and stopped with it (``parallelner.llm.local.LocalServer``),
  asked in few-shot completion steps (``parallelner.llm.fewshot.FewShotBackend``), at most
  ``_LOCAL_MAX_IN_FLIGHT`` requests in flight.

This is the only place that tells the embedded model from a server: the client asks its
``BackendChoice`` for the bound, the server to start and the backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parallelner.llm.ask import Backend, ChatBackend
from parallelner.llm.fewshot import FewShotBackend
from parallelner.llm.local import LocalServer

__all__ = ["BackendChoice", "choose_backend"]

# llama.cpp's server answers one request at a time: more in flight only queues there and
# turns into client timeouts.
_LOCAL_MAX_IN_FLIGHT = 2


@dataclass(frozen=True)
class BackendChoice:
    """How a client is answered: by a chat server, or by the embedded few-shot model."""

    name: str  # "chat" or "few-shot"
    local: bool  # the embedded model, started by the client

    def max_in_flight(self, wanted: int) -> int:
        """The in-flight bound for this backend, given the one asked for."""
        return min(wanted, _LOCAL_MAX_IN_FLIGHT) if self.local else wanted

    def server(self, model: str) -> LocalServer | None:
        """The server the client starts on open and stops on close (None: none)."""
        return LocalServer(model_alias=model) if self.local else None

    def backend(self, client: Any) -> Backend:
        """What answers ``client.ask(question)``."""
        return FewShotBackend(client) if self.local else ChatBackend(client)


_CHAT = BackendChoice("chat", local=False)
_FEW_SHOT = BackendChoice("few-shot", local=True)


def choose_backend(base_url: str | None, batch: bool = False) -> BackendChoice:
    """The backend for ``base_url``: chat on a server, few-shot on the embedded model;
    chat requests for a batch job (``batch``: they go into a file, whoever answers)."""
    return _FEW_SHOT if base_url is None and not batch else _CHAT

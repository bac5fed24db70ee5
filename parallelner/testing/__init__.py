"""Test doubles that are real services on loopback (an OpenAI-compatible server)."""

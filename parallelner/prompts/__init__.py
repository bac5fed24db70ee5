"""Versioned prompt templates (translate.v1, backtranslate.v1, translate-local.v1)."""

"""One settings object, read as: defaults < YAML file < PARALLELNER_* env < CLI flags.

The flat names below (``llm_base_url`` -> ``PARALLELNER_LLM_BASE_URL`` ...) are a
contract: scripts, docs and ``docker-compose.yml`` rely on them. Stage settings are
nested models (``PARALLELNER_QUALITY__MIN_CHRF=30``).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from parallelner.errors import ConfigError
from parallelner.redaction import redact_url

__all__ = [
    "Settings",
    "TranslateSettings",
    "ProjectSettings",
    "LadderSettings",
    "BatchSettings",
    "QualitySettings",
    "URL_FIELDS",
    "load_settings",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TranslateSettings(_Section):
    """Stage 1: translation."""

    prompt_version: str = "translate.v1"
    temperature: float = 0.0
    max_tokens: int = 1024
    max_reasks: int = 2  # re-asks for invalid / incomplete / wrong-language replies
    max_retries: int = 6  # transport retries (429, 5xx, timeouts, resets)
    timeout_s: float = 120.0
    back_translate: bool = True


class ProjectSettings(_Section):
    """Stage 2: span projection and the repair ladder."""

    fuzzy_threshold: float = 0.8  # minimum score (0..1) for a fuzzy span
    repair: bool = True  # run the repair ladder when an LLM is configured


class LadderSettings(_Section):
    """The closed repair loop (``parallelner.stages.ladder``): doubts climb automatic
    rungs (evidence re-ask, mention re-translation + rewrite, fresh translation, fallback
    model) before a pair goes to review."""

    enabled: bool = True
    # questions one pair may ask in all, the first pass included (about 2); a rung that
    # would not fit is skipped
    max_requests_per_pair: int = Field(default=16, ge=1)


class BatchSettings(_Section):
    """Whole runs through a batch API (``parallelner run --batch``): rounds of questions,
    each one batch job (``parallelner.batchrun``)."""

    # openai: the Files + Batches API at llm_base_url (OpenAI, or any server that has
    # them); vllm: ``vllm run-batch`` on a local file, one process per round
    backend: Literal["openai", "vllm"] = "openai"
    poll_s: float = Field(default=30.0, gt=0)  # seconds between two looks at a job
    completion_window: str = "24h"
    # a question whose line failed is asked again in the next round, this many rounds at
    # most (then its instance fails, transient: the next run asks again)
    max_rounds: int = Field(default=12, ge=1)
    vllm_command: str = "vllm run-batch"  # + -i IN -o OUT --model MODEL
    # a round with fewer questions than this goes online instead (the server at
    # llm_base_url, full price), and so does the rest of the run: the repair loop's tail
    # of small rounds then costs minutes, not a batch window each; 0: every round a job
    online_below: int = Field(default=0, ge=0)


class QualitySettings(_Section):
    """Stage 3 (automatic): thresholds and routing."""

    min_chrf: float = 25.0  # back-translation chrF below this -> rejected
    review_chrf: float = 40.0  # between min_chrf and this -> review
    min_projection_score: float = 0.8
    # bounds on the length ratio tgt/src in characters, after dividing by the expected
    # ratio of the two scripts (script_density: en->zh expects 0.33 / 1.0)
    length_ratio_min: float = 0.33
    length_ratio_max: float = 3.0
    length_min_chars: int = 20  # shorter sources skip the length-ratio check (too noisy)
    script_density: dict[str, float] = Field(
        default_factory=lambda: {"LATIN": 1.0, "CJK": 0.33, "HANGUL": 0.45, "CYRILLIC": 1.05}
    )  # characters per unit of meaning relative to Latin; scripts not listed count 1.0
    script_accept_share: float = 0.4  # share of tokens in the target's script that settles it
    script_reject_share: float = 0.1  # below this share: wrong language without langdetect
    langdetect_reject_prob: float = 0.9  # langdetect alone rejects only when this sure
    lang_min_words: int = 6  # ... and only texts of at least this many words
    max_copy_similarity: float = 0.9  # target vs source (mentions removed) above -> untranslated
    # entity verification (parallelner.quality.entities): read every projected mention
    # back in the source language (in the back-translation request) and check it
    verify_entities: bool = True
    entity_roundtrip_min: float = 1.0  # round-trip score below this -> review
    max_variant_share: float = 0.5  # zh-Hant/zh-Hans target: other-variant share above -> rejected
    audit_rate: float = 0.02  # share of accepted pairs sent to review as an audit
    seed: int = 13


# plain-text settings that are URLs: their user info may hold a password (masked on show)
URL_FIELDS = ("llm_base_url", "label_studio_url", "warehouse", "storage_url", "dask_address")


class Settings(BaseSettings):
    """Effective configuration of ParallelNER."""

    model_config = SettingsConfigDict(
        env_prefix="PARALLELNER_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Path(".parallelner")
    # dataset store: SQL catalog URI (unset = SQLite <home>/catalog.db) and warehouse
    # location (unset = <home>/warehouse; a path or a URI such as s3://bucket/prefix)
    catalog_uri: SecretStr | None = None
    warehouse: str | None = None
    # shards, rows and unfinished markers (unset = under home): one location every Dask
    # worker reaches, a shared-file-system path or a URL such as s3://bucket/prefix
    # (``parallelner.storage``; S3 credentials from the AWS variables, as the warehouse)
    storage_url: str | None = None
    # a running Dask scheduler (tcp://host:8786) for ``--runner dask``; unset = a local
    # cluster started for the run
    dask_address: str | None = None
    # LLM (unset base URL = the embedded local model); several URLs, comma-separated (or a
    # YAML list), are replicas of one model: see parallelner.llm.endpoints
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str = "gemma-3-270m"
    llm_fallback_model: str | None = None
    llm_max_in_flight: int = Field(default=64, ge=1)
    # a run waits this long for an LLM server that answers nothing before it fails the
    # requests (failed for a transient reason: the next run retries them)
    llm_outage_wait_s: float = Field(default=600.0, ge=0)
    # the request timeout is fitted to the observed latency (3 x p99), never below this
    # and never above translate.timeout_s
    llm_timeout_min_s: float = Field(default=10.0, gt=0)
    # before that fit exists (no latency observed yet: the first requests of a run), a
    # request is given up after this long (doubled for each of its retries, at most
    # translate.timeout_s): a server that trickles bytes or never answers is known in a
    # minute, not after retries of the full timeout each
    llm_first_timeout_s: float = Field(default=60.0, gt=0)
    # the LLM reply cache: unset = SQLite <home>/llm-cache.sqlite (one machine); a
    # postgresql:// URL = one table shared by every machine of a run (a secret: may hold a
    # password). Where replies are cached never changes them: not in any config hash.
    llm_cache_url: SecretStr | None = None
    # Label Studio
    label_studio_url: str = "http://127.0.0.1:8080"
    label_studio_api_key: SecretStr | None = None
    label_studio_project: str = "ParallelNER review"
    # input: a sentence longer than this is quarantined (reason sentence_too_long), not
    # sent to the LLM
    max_sentence_chars: int = Field(default=5_000, ge=1)
    # pipeline
    shard_size: int = Field(default=1000, ge=1)
    workers: int = Field(default=4, ge=1)
    # worker processes for the shards (``parallelner.shardprocs``): 0 runs them on threads
    # of the run's process; None (default) starts one per core for a run of 20,000
    # instances or more on a machine of two cores or more
    processes: int | None = Field(default=None, ge=0)
    translate: TranslateSettings = Field(default_factory=TranslateSettings)
    project: ProjectSettings = Field(default_factory=ProjectSettings)
    ladder: LadderSettings = Field(default_factory=LadderSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)

    _yaml_data: dict[str, Any] = {}

    @field_validator("llm_base_url", mode="before")
    @classmethod
    def _base_urls(cls, value: Any) -> Any:
        """Several endpoints: a YAML list or comma-separated; each an http(s) URL."""
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        if not isinstance(value, str) or "," not in value:
            return value  # one URL: taken as given
        urls = [u.strip() for u in value.split(",") if u.strip()]  # a trailing comma is fine
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(
                    f"each of several LLM base URLs must start with http:// or https://, "
                    f"got {url.split('@')[-1]!r}"
                )
        return ",".join(urls)

    @field_validator("llm_cache_url", mode="before")
    @classmethod
    def _cache_url(cls, value: Any) -> Any:
        """Empty = the SQLite default; else a postgresql:// URL (never echoed: a secret)."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str) or not value.strip().startswith(
            ("postgresql://", "postgresql+psycopg2://", "postgres://")
        ):
            raise ValueError("expected a postgresql:// URL (or nothing: the SQLite file)")
        return value.strip()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init (CLI flags) > env > YAML (passed via _YamlSource) > defaults
        return (init_settings, env_settings, _YamlSource(settings_cls))

    def masked(self) -> dict[str, Any]:
        """Settings as plain data with every secret replaced by '***' (or None)."""
        data = self.model_dump(mode="json")
        for key in ("llm_api_key", "label_studio_api_key", "catalog_uri", "llm_cache_url"):
            data[key] = "***" if getattr(self, key) is not None else None
        for key in URL_FIELDS:  # a password in a URL's user info
            if data.get(key):
                data[key] = redact_url(data[key])
        return data

    def stage_hash(self, *sections: str) -> str:
        """Short content hash of the settings that change a stage's output.

        Never includes secrets, concurrency, worker counts or paths: those do not change
        results, so they must not invalidate caches.
        """
        data = {s: getattr(self, s).model_dump(mode="json") for s in sections}
        data["llm_model"] = self.llm_model
        data["llm_fallback_model"] = self.llm_fallback_model
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# The YAML file of the ``load_settings`` call in progress (a context variable: calls in
# other threads never see it). pydantic-settings asks its sources without arguments.
_YAML_PATH: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "parallelner_settings_yaml", default=None
)


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field, field_name):  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _YAML_PATH.get()
        if path is None:
            return {}
        return read_yaml_mapping(path)


def read_yaml_mapping(path: Path, expected: str = "settings") -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping; ConfigError names file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of {expected} at the top level")
    return data


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build the effective Settings; ``overrides`` are CLI flags (None values ignored)."""
    token = _YAML_PATH.set(config)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "settings"
            lines.append(f"{loc}: {err['msg']}")
        source = f"{config}: " if config else ""
        raise ConfigError(source + "invalid settings: " + "; ".join(lines)) from None
    finally:
        _YAML_PATH.reset(token)

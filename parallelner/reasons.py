"""Every machine-readable reason code and record status, documented in one place.

A check returns a `Reason` or nothing; a record keeps the list of reasons that decided
its status. Codes are stable strings: they end up in Parquet files and dashboards, so
an existing code is never renamed, only added to.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Final state of one ParallelRecord. Every input instance ends in exactly one."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    REVIEW = "review"
    REVIEWED_ACCEPTED = "reviewed_accepted"
    REVIEWED_REJECTED = "reviewed_rejected"
    FAILED = "failed"


class Reason(StrEnum):
    """Why an instance, entity or record ended where it did.

    Grouped by the stage that emits them; the group headings and the comment after each
    code are the reference table that `parallelner reasons` prints.
    """

    # --- input (readers): why a line was quarantined or repaired -----------------
    MALFORMED_LINE = "malformed_line"  # a line that cannot be parsed in the format
    INVALID_JSON = "invalid_json"  # a JSON line that does not parse
    INVALID_UTF8 = "invalid_utf8"  # bytes that are not UTF-8
    EMPTY_SENTENCE = "empty_sentence"  # no tokens / empty text
    OFFSET_OUT_OF_RANGE = "offset_out_of_range"  # entity offsets outside the text
    MENTION_MISMATCH = "mention_mismatch"  # text[start:end] != mention
    UNKNOWN_LABEL = "unknown_label"  # label not in the dataset's label map
    UNKNOWN_TAG = "unknown_tag"  # tag not in the tagging scheme (e.g. X-PER)
    ORPHAN_INSIDE_TAG = "orphan_inside_tag"  # I- after O / another type (repaired)
    OVERLAPPING_ENTITIES = "overlapping_entities"  # two entities share characters
    DUPLICATE_ID = "duplicate_id"  # the same instance id twice in one input
    UNCLOSED_ENTITY = "unclosed_entity"  # BIOES B-/I- not ended by E- (closed, repaired)
    UNREADABLE_FILE = "unreadable_file"  # missing, unreadable or not in the format asked
    UNKNOWN_LANGUAGE = "unknown_language"  # a record's lang is not a language we support
    SENTENCE_TOO_LONG = "sentence_too_long"  # longer than the reader's cap: never sent
    NO_USABLE_INPUT = "no_usable_input"  # a run's sources hold no usable instance at all

    # --- stage 1, translation ------------------------------------------------
    LLM_UNREACHABLE = "llm_unreachable"  # connection errors / timeouts after all retries
    LLM_HTTP_ERROR = "llm_http_error"  # non-retryable HTTP status or retries exhausted
    REPLY_INVALID_JSON = "reply_invalid_json"  # reply is not the JSON asked for
    REPLY_MISSING_ENTITIES = "reply_missing_entities"  # entity ids missing from reply
    REPLY_EMPTY = "reply_empty"  # empty translation
    REPLY_TRUNCATED = "reply_truncated"  # finish_reason == "length"
    REPLY_WRONG_LANGUAGE = "reply_wrong_language"  # translation not in target language
    ESCALATED = "escalated"  # the fallback model answered (informational)
    REPLY_EXTRA_ENTITIES = "reply_extra_entities"  # reply listed an entity the source lacks

    # --- stage 2, projection and repair ------------------------------------------
    NOT_FOUND = "not_found"  # no candidate span above threshold
    AMBIGUOUS = "ambiguous"  # candidates exist, none could be assigned uniquely
    SPAN_TAKEN = "span_taken"  # the only candidate is already used by another entity
    EMPTY_TARGET = "empty_target"  # nothing to project onto
    INVALID_SOURCE_ENTITY = "invalid_source_entity"  # source offsets do not match text
    MENTION_TOO_LONG = "mention_too_long"  # mention longer than the target sentence
    UNEXPECTED_SCRIPT = "unexpected_script"  # target not in the expected script
    REPAIR_EXHAUSTED = "repair_exhausted"  # every rung of the repair ladder failed

    # --- stage 3, automatic quality ----------------------------------------------
    NO_ENTITIES = "no_entities"  # legitimate, kept (informational)
    WRONG_LANGUAGE = "wrong_language"  # target text not in tgt_lang
    SOURCE_LANGUAGE_COPY = "source_language_copy"  # target still in source language
    UNTRANSLATED = "untranslated"  # target (nearly) identical to source
    EMPTY_TRANSLATION = "empty_translation"  # empty / whitespace-only target
    LENGTH_RATIO = "length_ratio"  # target/source length outside bounds
    LOW_BACKTRANSLATION = "low_backtranslation"  # chrF of back-translation too low
    BORDERLINE_BACKTRANSLATION = "borderline_backtranslation"  # within review band
    INCOMPLETE_ENTITIES = "incomplete_entities"  # some source entity unprojected
    LABEL_CHANGED = "label_changed"  # projected label differs from the source
    LOW_PROJECTION_SCORE = "low_projection_score"  # a projected span scored low
    OVERLAPPING_SPANS = "overlapping_spans"  # two target spans overlap
    LEFTOVER_MARKUP = "leftover_markup"  # tags, brackets, code fences left by the LLM
    CONTROL_CHARACTERS = "control_characters"  # control characters in the target
    DUPLICATE = "duplicate"  # same normalised pair seen earlier in the run
    AUDIT_SAMPLE = "audit_sample"  # random audit of an accepted pair
    REPAIR_UNFINISHED = "repair_unfinished"  # repair ladder ended without a full pair
    NO_BACKTRANSLATION = "no_backtranslation"  # back-translation asked for, none came back
    WRONG_SCRIPT_VARIANT = "wrong_script_variant"  # Simplified where Traditional asked, or reverse
    UNEXPECTED_NAME = "unexpected_name"  # back-translation names what the source does not
    ENTITY_ROUNDTRIP = "entity_roundtrip"  # target mention reads back as another text
    ENTITY_UNVERIFIED = "entity_unverified"  # no read-back of a target mention
    ENTITY_NUMBERS = "entity_numbers"  # source and target mention hold different numbers
    ENTITY_IMPLAUSIBLE = "entity_implausible"  # target mention cannot be a name (no letters)
    ENTITY_BOUNDARY = "entity_boundary"  # target span cuts a word or a bracket pair
    ENTITY_AMBIGUOUS = "entity_ambiguous"  # mention occurs more often in target than source

    # --- stage 3, human review ------------------------------------------------------
    # after a review, ``reasons`` hold these codes only; the automatic ones move to
    # ``auto_reasons`` (history)
    REVIEW_BAD_TRANSLATION = "review_bad_translation"  # rejected: the translation is wrong
    REVIEW_WRONG_SPAN = "review_wrong_span"  # rejected: a span is wrong
    REVIEW_WRONG_TYPE = "review_wrong_type"  # rejected: an entity type is wrong
    REVIEW_MISSING_ENTITY = "review_missing_entity"  # rejected: an entity is missing
    REVIEW_OTHER = "review_other"  # rejected: another reason (see the comment)
    REVIEW_CORRECTED = "review_corrected"  # annotator changed spans (informational)
    REVIEW_ACCEPTED = "review_accepted"  # a reviewer accepted the pair (spans as they left them)

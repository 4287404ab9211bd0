"""Redaction of secrets and key-shaped strings: exact before/after texts."""

from __future__ import annotations

import pytest

from ormagic.context.redact import redact

# Fake keys shaped like the real formats; none of them is a credential.
OPENROUTER = "sk-or-v1-" + "0123456789abcdef" * 4
OPENAI = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
ANTHROPIC = "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe"
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
GITHUB_PAT = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"
SLACK = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp"
AWS = "AKIAIOSFODNN7EXAMPLE"
GOOGLE = "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"
HUGGINGFACE = "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"
GITLAB = "glpat-" + "xY9_zW8-vU7tS6rQ5pO4"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (f'key = "{OPENROUTER}"', 'key = "[REDACTED]"'),
        (f"OPENAI_API_KEY={OPENAI}", "OPENAI_API_KEY=[REDACTED]"),
        (f"client = Anthropic(api_key='{ANTHROPIC}')", "client = Anthropic(api_key='[REDACTED]')"),
        (f"token: {GITHUB}", "token: [REDACTED]"),
        (f"{GITHUB_PAT} is mine", "[REDACTED] is mine"),
        (f"SLACK={SLACK}\n", "SLACK=[REDACTED]\n"),
        (f"aws_access_key_id = {AWS}", "aws_access_key_id = [REDACTED]"),
        (f"maps?key={GOOGLE}&q=x", "maps?key=[REDACTED]&q=x"),
        (f"login(token='{HUGGINGFACE}')", "login(token='[REDACTED]')"),
        (f"PRIVATE-TOKEN: {GITLAB}", "PRIVATE-TOKEN: [REDACTED]"),
        (f"jwt={JWT};", "jwt=[REDACTED];"),
        (
            "Authorization: Bearer abc123.DEF456-ghi789_jkl",
            "Authorization: Bearer [REDACTED]",
        ),
        (
            f"{{'Authorization': 'Bearer {OPENROUTER}'}}",
            "{'Authorization': 'Bearer [REDACTED]'}",
        ),
    ],
)
def test_key_shapes_are_redacted(before: str, after: str) -> None:
    assert redact(before) == after


def test_private_key_block_is_redacted_whole() -> None:
    text = (
        "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx1y2z3\n"
        "bm90IGEgcmVhbCBrZXk=\n-----END RSA PRIVATE KEY-----\nafter"
    )
    assert redact(text) == "before\n[REDACTED]\nafter"


def test_half_of_a_private_key_block_is_redacted() -> None:
    head = "key:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    tail = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nbm90IGEgcmVhbCBrZXk=\n-----END PRIVATE KEY-----\nok"
    assert redact(head) == "key:\n[REDACTED]"
    assert redact(tail) == "[REDACTED]\nok"


def test_exact_secrets_are_redacted_even_without_a_known_shape() -> None:
    secret = "my-own-proxy-key-7f3a"
    assert redact(f"headers={{'X-Key': '{secret}'}}", [secret]) == "headers={'X-Key': '[REDACTED]'}"


def test_longer_secret_wins_over_a_secret_inside_it() -> None:
    assert redact("aaaaaaaa-bbbbbbbb", ["aaaaaaaa", "aaaaaaaa-bbbbbbbb"]) == "[REDACTED]"


def test_short_or_empty_secrets_are_ignored() -> None:
    assert redact("a plain sentence", ["", "a", "plain"]) == "a plain sentence"


@pytest.mark.parametrize(
    "text",
    [
        "Please ask-me-anything-about-the-model-settings later.",
        "sk-learn is spelled scikit-learn; sk-the-quick-brown-fox-jumps-over",
        "see https://github.com/ormagic/ormagic/commit/3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39",
        "uuid 123e4567-e89b-12d3-a456-426614174000 and sha256 "
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "hf_model_name = 'gpt2'; AKIA is a prefix; Bearer tokens go in headers",
        "The Bearer authentication scheme is defined in RFC 6750.",
    ],
)
def test_normal_text_is_untouched(text: str) -> None:
    assert redact(text) == text

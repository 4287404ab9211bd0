"""Redaction: keep API keys and tokens out of what is sent to the model.

Notebook context is gathered from cells, outputs, errors and variables, and a notebook
often holds credentials (``os.environ["OPENAI_API_KEY"] = "sk-..."``). Everything that
goes into the context block passes through :func:`redact` first: the exact secrets the
caller knows (the OpenRouter key) and strings shaped like well-known key formats become
``[REDACTED]``.

The patterns follow the providers' published key formats (OpenRouter ``sk-or-v1-``,
OpenAI ``sk-``/``sk-proj-``, Anthropic ``sk-ant-``, GitHub token prefixes, Slack
``xox?-``, AWS access key ids, Google API keys, Hugging Face ``hf_``, GitLab
``glpat-``, RFC 6750 ``Bearer`` credentials, RFC 7519 JWTs and RFC 7468 PEM private
keys). They are anchored on prefixes on purpose: a generic "high entropy" rule would also
eat the commit hashes and UUIDs the model needs to see.

Speed matters (a cell can print megabytes): a pattern that starts with a set of literal
prefixes lets ``re`` skip through text quickly, and the full patterns are only tried where
a prefix was found. Every pattern is linear in the text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["REDACTED", "redact"]

REDACTED = "[REDACTED]"

# A secret shorter than this is not replaced: replacing "" or "ab" everywhere would wreck
# the text, and no real API key is that short.
_MIN_SECRET_LENGTH = 8

# A prefix only counts at the start of a token: "ask-me" is prose, "sk-..." is a key.
_TOKEN_CHAR = r"[A-Za-z0-9_\-]"
_START = rf"(?<!{_TOKEN_CHAR})"
_END = rf"(?!{_TOKEN_CHAR})"
# Random key bodies contain digits early on; requiring one keeps long hyphenated prose
# ("sk-the-quick-brown-fox-jumps") from matching. Bounded, so it never rescans far.
_HAS_DIGIT = r"(?=[A-Za-z_\-]{0,60}[0-9])"

# Every branch starts with a literal, so the search skips text with a character-set test.
_CANDIDATE_RE = re.compile(
    r"sk-|gh[pousr]_|github_pat_|xox[abprs]-|AKIA|AIza|hf_|glpat-|eyJ|Bearer"
)
_TOKEN_RE = re.compile(
    "|".join(
        [
            # sk-or-v1- (OpenRouter), sk-ant- (Anthropic), sk-proj- and plain sk- (OpenAI).
            rf"{_START}sk-{_HAS_DIGIT}{_TOKEN_CHAR}{{20,}}",
            rf"{_START}gh[pousr]_[A-Za-z0-9]{{20,}}{_END}",
            rf"{_START}github_pat_[A-Za-z0-9_]{{20,}}{_END}",
            rf"{_START}xox[abprs]-[A-Za-z0-9\-]{{10,}}",
            rf"{_START}AKIA[0-9A-Z]{{16}}{_END}",
            rf"{_START}AIza[0-9A-Za-z_\-]{{35}}{_END}",
            rf"{_START}hf_[A-Za-z0-9]{{30,}}{_END}",
            rf"{_START}glpat-[A-Za-z0-9_\-]{{20,}}",
            rf"{_START}eyJ[A-Za-z0-9_\-]{{5,}}\.eyJ[A-Za-z0-9_\-]{{5,}}\.[A-Za-z0-9_\-]*",
            # RFC 6750 b64token; the word "Bearer" stays so the code still reads right.
            r"(?P<bearer>\bBearer[ \t]+)(?=[A-Za-z._~+/=\-]{0,60}[0-9])[A-Za-z0-9._~+/\-]{16,}=*",
        ]
    )
)
_PEM_BEGIN_RE = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----")
_PEM_END_RE = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----")
_BASE64_LINE_RE = re.compile(r"[A-Za-z0-9+/=]{16,80}[ \t]*\r?")


def _redact_tokens(text: str) -> str:
    parts: list[str] = []
    done = 0
    candidate = _CANDIDATE_RE.search(text)
    while candidate is not None:
        match = _TOKEN_RE.match(text, candidate.start())
        if match is None:
            candidate = _CANDIDATE_RE.search(text, candidate.start() + 1)
            continue
        bearer = match.group("bearer")
        parts += [text[done : match.start()], f"{bearer}{REDACTED}" if bearer else REDACTED]
        done = match.end()
        candidate = _CANDIDATE_RE.search(text, done)
    parts.append(text[done:])
    return "".join(parts)


def _key_lines_start(text: str, lower: int, end: int) -> int:
    """Where the base64 lines just before an ``-----END`` line begin (not before ``lower``)."""
    start = end
    while start > lower and text[start - 1] == "\n":
        line_start = max(text.rfind("\n", lower, start - 1) + 1, lower)
        if not _BASE64_LINE_RE.fullmatch(text, line_start, start - 1):
            break
        start = line_start
    return start


def _redact_private_keys(text: str) -> str:
    """Whole PEM private-key blocks, and the halves an earlier cut may have left."""
    if "PRIVATE KEY-----" not in text:
        return text
    parts: list[str] = []
    done = 0
    # Each marker is searched for again only once the text before it is done: linear.
    begin = _PEM_BEGIN_RE.search(text)
    end = _PEM_END_RE.search(text)
    while begin is not None or end is not None:
        if end is not None and (begin is None or end.start() < begin.start()):
            # An END without its BEGIN: the lines above it are the key's tail.
            start = _key_lines_start(text, done, end.start())
            parts += [text[done:start], REDACTED]
            done = end.end()
        elif begin is not None:
            # A BEGIN without its END runs to the end of the text.
            closing = _PEM_END_RE.search(text, begin.end()) if end is not None else None
            parts += [text[done : begin.start()], REDACTED]
            done = closing.end() if closing else len(text)
        if begin is not None and begin.start() < done:
            begin = _PEM_BEGIN_RE.search(text, done)
        if end is not None and end.start() < done:
            end = _PEM_END_RE.search(text, done)
    parts.append(text[done:])
    return "".join(parts)


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with every exact secret and every key-shaped string replaced by ``[REDACTED]``.

    Exact secrets go first (longest first, so a secret that contains another is removed
    whole); secrets shorter than 8 characters are ignored.
    """
    for secret in sorted({s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len)[::-1]:
        text = text.replace(secret, REDACTED)
    return _redact_tokens(_redact_private_keys(text))

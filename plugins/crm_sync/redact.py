"""Keep secrets out of logs, exceptions, XCom and reports.

The Lead Gen & CRM API carries its secret key in the URL query string, and Salesforce session
ids travel in headers and SOAP bodies. Anything that might print a URL or an error body goes
through :func:`redact_url` / :func:`redact_text` first. :class:`SecretsFilter` is installed on
the library's loggers as a last line of defence.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"

# Query-string keys whose values are secrets in either API (compared case-insensitively).
SECRET_QUERY_KEYS = frozenset(
    {
        "secretkey",
        "secret_key",
        "password",
        "token",
        "access_token",
        "session_id",
        "sessionid",
        "sid",
    }
)

_SECRET_PATTERNS = [
    # secretKey=... in any URL or text, whatever the case of the key
    re.compile(r"(?i)(secret_?key=)[^&\s'\"]+"),
    re.compile(r"(?i)(password=)[^&\s'\"]+"),
    re.compile(r"(?i)(access_token=)[^&\s'\"]+"),
    # Authorization headers and SOAP session ids
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9!._\-]+"),
    re.compile(r"(?i)(<sessionId>)[^<]+"),
    re.compile(r"(?i)(X-SFDC-Session['\"]?\s*[:=]\s*['\"]?)[^'\",\s]+"),
]


def redact_url(url: str) -> str:
    """Return ``url`` with the values of secret query parameters replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if not parts.query:
        return url
    query = [
        (k, REDACTED if k.lower() in SECRET_QUERY_KEYS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def redact_text(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """Remove known secret shapes and the literal ``secrets`` from free text."""
    out = text
    for secret in secrets:
        if secret and len(secret) >= 4:
            out = out.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        out = pattern.sub(lambda m: m.group(1) + REDACTED, out)
    return out


class SecretsFilter(logging.Filter):
    """Logging filter that rewrites a record's message with secrets removed.

    It formats the message once (``record.getMessage()``), redacts it, and clears ``args`` so
    later handlers cannot re-format the unredacted values back in.
    """

    def __init__(self, secrets: tuple[str, ...] | list[str] = ()):
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def add_secret(self, secret: str) -> None:
        if secret and secret not in self._secrets:
            self._secrets = (*self._secrets, secret)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        cleaned = redact_text(message, self._secrets)
        record.msg = cleaned
        record.args = None
        return True

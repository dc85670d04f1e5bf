"""``SalesforceClient``: the parts of the package put together, and built from an Airflow connection."""

from __future__ import annotations

from typing import Any

import requests
from simple_salesforce.exceptions import SalesforceAuthenticationFailed

from crm_sync.errors import AuthError, ConfigError, RetriableError
from crm_sync.redact import redact_text

from .bulk_query import BulkQuery
from .errors import login_unavailable
from .metadata import MetadataReads
from .reads import Reads
from .writes import Writes

_SECRET_EXTRAS = ("security_token", "consumer_secret", "private_key")


def _connection_secrets(conn: Any) -> list[str]:
    """The connection's password and secret extras (short or ``extra__salesforce__`` names)."""
    extras = conn.extra_dejson or {}
    secrets = [conn.password]
    for key in _SECRET_EXTRAS:
        secrets.append(extras.get(key) or extras.get(f"extra__salesforce__{key}"))
    return [s for s in secrets if isinstance(s, str) and s]


def _login_error(exc: Exception, conn_id: str, secrets: list[str]) -> Exception:
    """What a failed ``hook.get_conn()`` means for the caller (never naming a secret)."""
    if isinstance(exc, SalesforceAuthenticationFailed):
        if login_unavailable(exc):
            return RetriableError(
                f"Salesforce login for connection {conn_id!r} is unavailable (HTTP {exc.code})",
                code="LOGIN_UNAVAILABLE",
            )
        detail = getattr(exc, "auth_message", exc)
        return AuthError(
            redact_text(
                f"Salesforce rejected the credentials of connection {conn_id!r} "
                f"({exc.code}: {detail}); check its login, password and security_token",
                secrets,
            )
        )
    if isinstance(exc, TypeError):
        return ConfigError(
            f"Salesforce connection {conn_id!r} is incomplete: it needs login, password and a "
            f"non-empty security_token extra (or another complete auth method): {exc}"
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return ConfigError(
            f"TLS verification failed for connection {conn_id!r} ({type(exc).__name__}); "
            "check REQUESTS_CA_BUNDLE"
        )
    return RetriableError(
        redact_text(
            f"cannot reach Salesforce for connection {conn_id!r}: {type(exc).__name__}", secrets
        ),
        code="CONNECTION",
    )


class SalesforceClient(Writes, Reads, BulkQuery, MetadataReads):
    """Transport over one simple-salesforce connection. See :mod:`crm_sync.clients.salesforce`."""

    @classmethod
    def from_connection(cls, conn_id: str = "salesforce_default", **kw: Any) -> SalesforceClient:
        """Build the provider's ``SalesforceHook(conn_id).get_conn()`` and wrap it.

        Raises :class:`ConfigError` for a missing/incomplete connection, :class:`AuthError` when
        Salesforce refuses the credentials (the message names the connection, never a secret),
        :class:`RetriableError` when Salesforce cannot be reached.
        """
        from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

        hook = SalesforceHook(salesforce_conn_id=conn_id)
        try:
            conn = hook.get_connection(conn_id)
        except Exception as exc:  # AirflowNotFoundException and friends
            raise ConfigError(
                f"Airflow connection {conn_id!r} is not defined: {type(exc).__name__}"
            ) from None
        secrets = _connection_secrets(conn)
        try:
            sf = hook.get_conn()
        except (
            SalesforceAuthenticationFailed,
            TypeError,
            requests.ConnectionError,
            requests.Timeout,
        ) as exc:
            raise _login_error(exc, conn_id, secrets) from None
        return cls(sf, conn_id=conn_id, secrets=secrets, **kw)

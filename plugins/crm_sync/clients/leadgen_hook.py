"""Airflow hook for Lead Gen & CRM: turns an Airflow connection into a :class:`LeadGenClient`.

Connection fields:

* ``host`` -- the API base URL, scheme to path: ``https://api.sharpspring.com/pubapi/v1.2/`` or,
  for the sandbox, ``http://127.0.0.1:8766/pubapi/v1.2/``. A bare host name also works, with
  ``port`` and ``schema`` (the path, default ``pubapi/v1.2/``) and the extra ``scheme``
  (default ``https``) -- which is what the URI form of a connection produces.
* ``login`` -- the account ID; ``password`` -- the secret key.
* extras (all optional): ``output_timezone`` (the zone the account's API answers timestamps
  in, an IANA name; default ``UTC``), ``app_base_url`` (the web app, for record links; read by
  ``crm_sync.runtime``), ``max_per_second``, ``timeout``, ``batch_size``, ``page_size``,
  ``max_retries``, ``backoff_base``, ``verify`` (a CA bundle path for an HTTPS sandbox, or
  false), ``scheme``. Each may also be spelled ``extra__leadgen__<name>``, as older Airflow
  connection forms store provider fields.

The connection type is registered by the package's Airflow provider entry point
(``crm_sync.get_provider_info``): Airflow's connection form then shows "Lead Gen & CRM"
with these labels.

Ready-made connection for a sandbox on port 8766::

    AIRFLOW_CONN_LEADGEN_DEFAULT='{"conn_type":"leadgen","host":"http://127.0.0.1:8766/pubapi/v1.2/",
                                   "login":"SANDBOXACCOUNT","password":"SANDBOXSECRET"}'
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from airflow.sdk import BaseHook

from crm_sync.clients.leadgen import LeadGenClient
from crm_sync.errors import ConfigError, SyncError
from crm_sync.get_provider_info import CONN_TYPE, FIELD_BEHAVIOUR, FORM_FIELDS

DEFAULT_PATH = "pubapi/v1.2/"

# extra name -> converter for the LeadGenClient keyword of the same name
_NUMERIC_EXTRAS: dict[str, type] = {
    "max_per_second": float,
    "timeout": float,
    "batch_size": int,
    "page_size": int,
    "max_retries": int,
    "backoff_base": float,
}


def extra_value(extras: dict[str, Any], name: str) -> Any:
    """An extra by its plain name, else by the ``extra__leadgen__`` prefixed one (blank = unset)."""
    for key in (name, f"extra__{CONN_TYPE}__{name}"):
        if extras.get(key) not in (None, ""):
            return extras[key]
    return None


def _as_bool_or_path(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("false", "0", "no", "off"):
        return False
    if text.lower() in ("true", "1", "yes", "on", ""):
        return True
    return text


def base_url_from_connection(
    host: str | None, port: int | None, schema: str | None, extras: dict[str, Any]
) -> str:
    """Build the API base URL from either a full URL in ``host`` or host/port/schema parts."""
    host = (host or "").strip()
    if not host:
        raise ConfigError("the Lead Gen & CRM connection has no host (the API base URL)")
    if "://" in host:
        parts = urlsplit(host)
        netloc = parts.netloc
        if port and parts.port is None:
            netloc = f"{netloc}:{port}"
        path = (
            parts.path
            if parts.path not in ("", "/")
            else "/" + (schema or DEFAULT_PATH).lstrip("/")
        )
        url = urlunsplit((parts.scheme, netloc, path, "", ""))
    else:
        scheme = str(extras.get("scheme") or "https")
        netloc = f"{host}:{port}" if port else host
        url = f"{scheme}://{netloc}/{(schema or DEFAULT_PATH).lstrip('/')}"
    return url if url.endswith("/") else url + "/"


class LeadGenHook(BaseHook):
    """Lead Gen & CRM (SharpSpring) JSON-RPC API v1.2 hook.

    ``get_conn()`` / ``get_client()`` return a configured :class:`LeadGenClient` (cached per hook);
    keyword arguments given to the hook override the connection's extras (tests use them to
    inject ``sleep``/``clock``/``session``).
    """

    conn_name_attr = "leadgen_conn_id"
    default_conn_name = "leadgen_default"
    conn_type = CONN_TYPE
    hook_name = "Lead Gen & CRM"

    def __init__(self, leadgen_conn_id: str = default_conn_name, **client_kwargs: Any):
        super().__init__()
        self.leadgen_conn_id = leadgen_conn_id
        self._client_kwargs = client_kwargs
        self._client: LeadGenClient | None = None

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra form fields, for Airflow versions that build the connection form from the hook
        (Airflow 3.2+ reads the same fields from the provider info, ``provider.FORM_FIELDS``)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import StringField

        return {
            name: StringField(
                lazy_gettext(field["label"]),
                widget=BS3TextFieldWidget(),
                description=field["description"],
                default=field["schema"].get("default"),
            )
            for name, field in FORM_FIELDS.items()
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Labels of the standard fields (the provider info carries the same, kebab-cased)."""
        return {
            "hidden_fields": list(FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(FIELD_BEHAVIOUR["placeholders"]),
        }

    def get_conn(self) -> LeadGenClient:
        if self._client is None:
            self._client = self._build_client()
        return self._client

    def get_client(self) -> LeadGenClient:
        return self.get_conn()

    def _build_client(self) -> LeadGenClient:
        conn = self.get_connection(self.leadgen_conn_id)
        extras = dict(conn.extra_dejson or {})
        try:
            base_url = base_url_from_connection(conn.host, conn.port, conn.schema, extras)
        except ConfigError as exc:
            raise ConfigError(f"connection {self.leadgen_conn_id!r}: {exc}") from None
        if not conn.login or not conn.password:
            raise ConfigError(
                f"connection {self.leadgen_conn_id!r} needs login (account ID) and password (secret key)"
            )
        kwargs: dict[str, Any] = {}
        for key, convert in _NUMERIC_EXTRAS.items():
            value = extra_value(extras, key)
            if value is not None:
                try:
                    kwargs[key] = convert(value)
                except (TypeError, ValueError):
                    raise ConfigError(
                        f"connection {self.leadgen_conn_id!r}: extra {key!r} must be a number, got {value!r}"
                    ) from None
        zone = extra_value(extras, "output_timezone")
        if zone is not None:
            kwargs["output_timezone"] = str(zone).strip()
        verify = extras.get("verify", extras.get(f"extra__{CONN_TYPE}__verify"))
        if verify is not None and "session" not in self._client_kwargs:
            session = requests.Session()
            session.verify = _as_bool_or_path(verify)
            kwargs["session"] = session
        kwargs.update(self._client_kwargs)
        return LeadGenClient(
            base_url, conn.login, conn.password, conn_id=self.leadgen_conn_id, **kwargs
        )

    def test_connection(self) -> tuple[bool, str]:
        """One cheap call (getUserProfiles, 1 row): proves URL, credentials and quota."""
        try:
            client = self.get_conn()
            client.call("getUserProfiles", {"where": {}, "limit": 1, "offset": 0})
        except SyncError as exc:
            return False, str(exc)
        usage = client.daily_usage
        quota = f"; {usage[0]} of {usage[1]} daily calls used" if usage else ""
        return (
            True,
            f"Connected to Lead Gen & CRM account {client.account_id} at {client.base_url}{quota}",
        )

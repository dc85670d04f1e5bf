"""Airflow provider info of the installed package: the ``leadgen`` connection type and its form.

``pyproject.toml`` declares ``get_provider_info`` as the ``apache_airflow_provider`` entry
point of the distribution ``leadgen-salesforce-sync`` (the module name and place follow the
real providers, e.g. ``airflow/providers/http/get_provider_info.py``). Airflow's
ProvidersManager imports it in every process -- scheduler, api-server, workers, CLI, and DAG
parsing -- so it sits at the package root and imports nothing but the standard library (not
``crm_sync.clients``). Airflow 3.2+ builds the connection form from ``conn-fields`` and
``ui-field-behaviour`` here without importing the hook; ``LeadGenHook`` exposes the same fields
through ``get_connection_form_widgets``/``get_ui_field_behaviour`` for older versions.
"""

from __future__ import annotations

from typing import Any

PACKAGE_NAME = "leadgen-salesforce-sync"
CONN_TYPE = "leadgen"
HOOK_CLASS = "crm_sync.clients.leadgen_hook.LeadGenHook"
HOOK_NAME = "Lead Gen & CRM"

# Extra fields of the connection form (stored in the connection's extra under these names).
FORM_FIELDS: dict[str, dict[str, Any]] = {
    "output_timezone": {
        "label": "Output time zone",
        "description": (
            "Time zone the account's API answers timestamps in (IANA name, e.g. "
            "America/New_York). Timestamps read are converted to UTC and date ranges sent "
            "are converted to this zone. Default UTC (API v1.2)."
        ),
        "schema": {"type": ["string", "null"], "default": "UTC"},
    },
    "app_base_url": {
        "label": "App base URL",
        "description": (
            "Base URL of the Lead Gen & CRM web app, for the link to the lead on Salesforce "
            "records, e.g. https://app.sharpspring.com"
        ),
        "schema": {"type": ["string", "null"]},
    },
}

# Standard fields: the host is the whole API URL, the login the account ID and the password
# (a masked field) the secret key.
FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {"host": "API URL", "login": "Account ID", "password": "Secret key"},
    "placeholders": {
        "host": "https://api.sharpspring.com/pubapi/v1.2/",
        "login": "Account ID (API Settings)",
        "password": "Secret key (API Settings)",
        "extra": '{"max_per_second": 10, "timeout": 60, "batch_size": 500}',
    },
}


def get_provider_info() -> dict[str, Any]:
    """The provider info Airflow validates against ``provider_info.schema.json``."""
    return {
        "package-name": PACKAGE_NAME,
        "name": HOOK_NAME,
        "description": "Lead Gen & CRM (formerly SharpSpring) JSON-RPC API v1.2 hook and "
        "connection type, from the Lead Gen & CRM <-> Salesforce sync project.",
        "connection-types": [
            {
                "hook-class-name": HOOK_CLASS,
                "hook-name": HOOK_NAME,
                "connection-type": CONN_TYPE,
                "conn-fields": FORM_FIELDS,
                "ui-field-behaviour": FIELD_BEHAVIOUR,
            }
        ],
    }

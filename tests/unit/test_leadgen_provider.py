"""The provider info and the hook's form methods, without Airflow's provider discovery
(``tests/dags/test_provider.py`` runs that for real)."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import jsonschema
import pytest

from crm_sync.get_provider_info import FORM_FIELDS, get_provider_info

pytestmark = pytest.mark.unit


def test_provider_info_is_valid_for_the_installed_airflow():
    import airflow

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    [conn] = info["connection-types"]
    assert info["package-name"] == "leadgen-salesforce-sync"
    assert (conn["connection-type"], conn["hook-name"]) == ("leadgen", "Lead Gen & CRM")
    assert conn["ui-field-behaviour"]["relabeling"]["password"] == "Secret key"


def test_importing_the_provider_info_loads_no_client_code():
    """Airflow imports it in every process, DAG parsing included (see test_dag_integrity)."""
    code = (
        "import sys; import crm_sync.get_provider_info; "
        "print(sorted(m for m in sys.modules if m.startswith('crm_sync')), 'requests' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "['crm_sync', 'crm_sync.get_provider_info'] False"


def test_hook_form_methods_for_airflow_versions_that_ask_the_hook(monkeypatch):
    """Older Airflow builds the form from the hook (wtforms fields); fake the UI modules."""

    class StringField:
        def __init__(self, label, **kwargs):
            self.label, self.kwargs = label, kwargs

    modules = {
        "wtforms": types.SimpleNamespace(StringField=StringField),
        "flask_babel": types.SimpleNamespace(lazy_gettext=lambda text: f"t({text})"),
        "flask_appbuilder": types.SimpleNamespace(),
        "flask_appbuilder.fieldwidgets": types.SimpleNamespace(BS3TextFieldWidget=object),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    from crm_sync.clients.leadgen_hook import LeadGenHook

    widgets = LeadGenHook.get_connection_form_widgets()
    assert set(widgets) == set(FORM_FIELDS) == {"output_timezone", "app_base_url"}
    assert widgets["output_timezone"].label == "t(Output time zone)"
    assert widgets["output_timezone"].kwargs["default"] == "UTC"
    behaviour = LeadGenHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {
        "host": "API URL",
        "login": "Account ID",
        "password": "Secret key",
    }
    assert "password" not in behaviour["hidden_fields"]

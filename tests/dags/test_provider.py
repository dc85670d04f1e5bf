"""The project is an installed Airflow provider: Airflow lists the ``leadgen`` connection type
with our hook and builds its connection form (secret key as the masked password field).

Runs the real Airflow CLI (and the api-server's form metadata service) in subprocesses with the
test session's AIRFLOW_HOME, the way an operator would see it. Needs the editable install that
``scripts/bootstrap.sh`` (``make setup``) makes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.dags

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
HOOK_CLASS = "crm_sync.clients.leadgen_hook.LeadGenHook"


def _run(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=300, env=env, cwd=str(REPO), check=False
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _json(stdout: str) -> object:
    """The JSON document in ``stdout`` (Airflow may print log lines before it)."""
    start = min(i for i in (stdout.find("["), stdout.find("{")) if i >= 0)
    return json.loads(stdout[start:])


def test_airflow_providers_hooks_lists_the_leadgen_connection_type() -> None:
    hooks = _json(_run(AIRFLOW, "providers", "hooks", "-o", "json"))
    leadgen = [h for h in hooks if h.get("connection_type") == "leadgen"]
    assert leadgen == [
        {
            "connection_type": "leadgen",
            "class": HOOK_CLASS,
            "conn_id_attribute_name": "leadgen_conn_id",
            "package_name": "leadgen-salesforce-sync",
            "hook_name": "Lead Gen & CRM",
        }
    ]


def test_airflow_providers_widgets_lists_the_extra_fields() -> None:
    widgets = _json(_run(AIRFLOW, "providers", "widgets", "-o", "json"))
    ours = {w["connection_parameter_name"]: w for w in widgets if w["class"] == HOOK_CLASS}
    assert set(ours) == {"extra__leadgen__output_timezone", "extra__leadgen__app_base_url"}
    assert {w["package_name"] for w in ours.values()} == {"leadgen-salesforce-sync"}


FORM_SCRIPT = """
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
meta = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "leadgen"]
print(json.dumps([m.model_dump() for m in meta]))
"""


def test_connection_form_has_the_secret_key_as_password_field_and_our_extras() -> None:
    """What the UI's connection form is built from (GET /ui/connections/hook_meta)."""
    [form] = _json(_run(sys.executable, "-c", FORM_SCRIPT))
    assert form["hook_name"] == "Lead Gen & CRM" and form["hook_class_name"] == HOOK_CLASS
    fields = form["standard_fields"]
    assert fields["password"]["hidden"] is False and fields["password"]["title"] == "Secret key"
    assert fields["login"]["title"] == "Account ID" and fields["host"]["title"] == "API URL"
    assert fields["port"]["hidden"] is True and fields["url_schema"]["hidden"] is True
    extras = form["extra_fields"]
    assert extras["output_timezone"]["schema"]["title"] == "Output time zone"
    assert extras["output_timezone"]["value"] == "UTC"
    assert extras["app_base_url"]["schema"]["title"] == "App base URL"

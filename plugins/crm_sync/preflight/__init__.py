"""Preflight: is the org, the integration user, the account and the specs ready for the sync?

One function per requirement (``org``, ``fields``, ``owners``), each returning a
:class:`Check` (pass / warn / fail, with what to change where), collected by
:func:`run_preflight` into a :class:`Report` -- independent of Airflow and read-only.

Entry points:

* :func:`gate` -- a sync DAG's ``prepare`` calls it: runs the preflight once per pair of systems
  (and after the specs change), records the result under ``$CRM_SYNC_HOME/preflight/``, raises
  ``ConfigError`` with the fixes when a check fails;
* ``python -m crm_sync.preflight`` / ``make preflight`` (:mod:`.cli`);
* the ``crm_sync_preflight`` DAG (:func:`crm_sync.preflight.dag_task.run`).

See ``docs/preflight.md``.
"""

from crm_sync.preflight.gating import check_and_record, gate
from crm_sync.preflight.model import Check, Report, Status
from crm_sync.preflight.runner import run_preflight

__all__ = ["Check", "Report", "Status", "check_and_record", "gate", "run_preflight"]

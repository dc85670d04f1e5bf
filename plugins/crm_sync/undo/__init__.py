"""Undo of a sync run: restore what it overwrote, report (or remove) what it created.

Every run logs its writes (:mod:`crm_sync.pipeline.changelog`). An undo of a run
(:class:`~crm_sync.undo.runner.Undo`) reads that log, re-reads the records now and restores each
overwritten field only where the record still holds the value the run wrote (else a conflict is
reported and the field left alone); records the run created are reported, or removed with
``delete_created``. It runs from the ``crm_sync_undo`` DAG (:mod:`.dag_task`), the command line
(``python -m crm_sync.undo``, :mod:`.cli`) and the Sync health page of a run. See ``docs/undo.md``.
"""

# Light on purpose (the Sync health app imports it): the undo itself is in .runner.
UNDO_DAG = "crm_sync_undo"

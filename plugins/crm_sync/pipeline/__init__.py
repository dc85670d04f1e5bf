"""The sync spine shared by every DAG, one module per stage:

extract -> match -> transform/reconcile -> validate -> load -> record.

Stages hand each other files in the run folder (JSON lines, processed in bounded chunks) and
small summaries; never data frames through XCom.
"""

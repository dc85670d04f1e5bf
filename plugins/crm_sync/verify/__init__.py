"""The invariant checker: read both systems and the state store, report what the sync broke.

Read-only by construction. ``python -m crm_sync.verify`` (or ``make verify``) runs it; see
``docs/verify.md`` for the invariants, what explains an apparent violation, the options and the
exit codes. Library internals are imported only through :mod:`crm_sync.verify._lib`.
"""

from crm_sync.verify.model import KINDS, Report, Violation
from crm_sync.verify.runner import CHECKS, Options, checked

__all__ = ["CHECKS", "KINDS", "Options", "Report", "Violation", "checked"]

"""``python -m crm_sync.preflight``: see :mod:`crm_sync.preflight.cli`."""

from crm_sync.preflight.cli import main

raise SystemExit(main())

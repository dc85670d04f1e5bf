"""``python -m crm_sync.backup``: see :mod:`crm_sync.backup.cli`."""

from crm_sync.backup.cli import main

raise SystemExit(main())

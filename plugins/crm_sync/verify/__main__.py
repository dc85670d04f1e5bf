"""``python -m crm_sync.verify``: see :mod:`crm_sync.verify.cli`."""

from crm_sync.verify.cli import main

raise SystemExit(main())

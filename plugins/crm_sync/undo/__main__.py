from crm_sync.undo.cli import main

raise SystemExit(main())

from ampd.cli import main

raise SystemExit(main())

from runner.cli.commands import main

raise SystemExit(main())

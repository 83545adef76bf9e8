from liteship.cli import main

raise SystemExit(main())

from ovbench.cli import main

raise SystemExit(main())

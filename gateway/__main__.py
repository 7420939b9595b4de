"""``python -m gateway``: the same as the ``beatra-gateway`` command."""

from gateway.cli import main

raise SystemExit(main())

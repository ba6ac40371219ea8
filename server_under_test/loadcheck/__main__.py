"""Entry point of ``python -m server_under_test.loadcheck``."""

import sys

from server_under_test.loadcheck.cli import main

sys.exit(main())

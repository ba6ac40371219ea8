"""Entry point: ``python -m server_under_test --host 127.0.0.1 --port 0 --config default``."""

import sys

from server_under_test.cli import main

sys.exit(main())

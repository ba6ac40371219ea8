"""``python -m bench``: the same CLI as the ``bench`` command."""

import sys

from bench.cli.main import main

sys.exit(main())

"""The ``bench`` command line: argparse and exit codes only, one module per larger subcommand.

It may import everything below it (``bench.harness``, ``bench.results``, ``bench.report``,
``bench.core`` and the server's own CLI for ``bench serve``); nothing imports it.
"""

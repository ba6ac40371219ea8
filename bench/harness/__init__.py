"""Orchestration on dataclasses (never argparse): servers, Locust, runs, comparisons, capacity, perf.

``servers`` (the one server launcher: bundled, peer and external behind one interface), ``locust`` (the
one Locust launcher), ``requests`` (validated run requests), ``runner`` (one run), ``targets``,
``compare``, ``capacity``, ``perf`` with its parts (``perf_cost``, ``perf_memory``, ``memcheck``,
``clientbench``) and ``envinfo``.

May import ``bench.core``, ``bench.results``, ``bench.report`` and ``server_under_test`` (to start it);
imported only by ``bench.cli`` and the tests.
"""

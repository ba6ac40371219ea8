"""Rendering, from the result documents alone: ``run`` (report.html), ``comparison``, ``capacity``,
``perf_report``, ``summary`` (the console table), ``progress`` (live progress), ``figures`` (inline SVG)
and ``htmlkit``.

May import ``bench.core`` and ``bench.results``.
"""

"""Versioned JSON documents and what is computed from them alone: ``run`` (result.json), ``comparison``,
``slo`` (objectives) and ``stats`` (Welch's test).

May import ``bench.core`` only.
"""

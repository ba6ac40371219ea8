"""The pure core: the wire protocol, the frame reader, histograms, tokens, shared names and the errors.

No I/O, and it imports nothing else of the project; the server, the load library and the tool all
import it (``from bench.core import protocol``).
"""

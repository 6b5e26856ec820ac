"""Code shared by the agent and the collector: the wire schema and the message catalog.

Nothing here may import ``agent`` or ``collector``.
"""

__version__ = "0.1.0"

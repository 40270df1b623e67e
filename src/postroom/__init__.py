"""Postroom: the email courier for identity systems.

A message travels one way: intake -> store (which is also the queue) -> worker -> transport.
"""

__version__ = "0.1.0"

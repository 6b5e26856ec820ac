"""A service center in network namespaces, for integration tests and manual experiments.

``Lab`` (in :mod:`tests.lab.netlab`) builds the topology, starts the lab's DNS and HTTP services
(:mod:`tests.lab.dnsd`, :mod:`tests.lab.httpd`) and injects faults; :mod:`tests.lab.fixtures` holds
the pytest fixture; ``python -m tests.lab up|down|status`` is for manual use.
"""

from tests.lab.netlab import ADDRESSES, LINKS, Lab, LabError

__all__ = ["ADDRESSES", "LINKS", "Lab", "LabError"]

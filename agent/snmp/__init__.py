"""SNMP for the probe agent: a small client over pysnmp, device profiles as YAML, counter rates.

Nothing here imports pysnmp at import time: ``agent.snmp.client`` loads it on the first request, so
an agent that polls no SNMP device never pays its import cost (~12 MiB RSS).
"""

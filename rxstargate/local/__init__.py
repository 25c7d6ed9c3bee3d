"""Local Pulsar: the pulsar-lite broker plus rxstargate's Pulsar WebSocket gateway, on loopback.

Needs the ``local`` extra (``pip install rxstargate[local]``)::

    from rxstargate.local import LocalPulsar

    with LocalPulsar() as pulsar:
        print(pulsar.ws_url, pulsar.broker_url)
"""

from rxstargate.local._errors import LocalPulsarError
from rxstargate.local._local import LocalPulsar, run_local

__all__ = ["LocalPulsar", "LocalPulsarError", "run_local"]

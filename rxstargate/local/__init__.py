"""Local Pulsar: the pulsar-lite broker plus rxstargate's Pulsar WebSocket gateway, on loopback.

Needs the ``local`` extra (``pip install rxstargate[local]``)::

    from rxstargate.local import LocalPulsar

    with LocalPulsar() as pulsar:
        print(pulsar.ws_url, pulsar.broker_url)

The gateway serves Pulsar's WebSocket producer, consumer and reader endpoints (v1 and v2 paths),
the v3 multi-topic consumer (whose message frames also name their topic, an extension), and the
admin API's ``lastMessageId``. What it cannot do, because pulsar-lite cannot or by choice:

* no other admin call, no topic termination (``isEndOfTopic`` is always false), no seek, no delayed
  delivery (``deliverAt``/``deliverAfterMs`` are accepted and ignored), no partitioned topics
  (pulsar-lite only has a broker-wide ``default_partitions`` setting);
* a v3 ``topicsPattern`` is matched once, when its socket opens, against the topics that exist
  then (pulsar-lite cannot list a namespace's topics; the gateway reads its metadata file);
* accepted and validated but not applied: ``hashingScheme``, ``priorityLevel``,
  ``subscriptionMode=NonDurable`` (always durable), ``encryptionKeys`` (refused with 500);
* ack timeouts and negative-ack delays run in the gateway; Exclusive and Failover consumers get
  their expired and nacked messages again on the same socket (one message, where Pulsar rewinds
  the subscription), with a redelivery count (0 in Pulsar);
* peers that are gone are let go as Pulsar lets them go (a closed or reset socket at once, an
  idle one after 300 s), and sooner when their host vanished (TCP keepalive); no pings, and a
  peer that does not read is never dropped for it; text frames are limited to 1 MiB as in Pulsar;
* each Key_Shared subscription has a broker connection of its own, so that one pulsar-lite
  stalls (see the README) stalls no other socket;
* the broker port takes no credentials (``token`` guards the WebSocket API only); both ports
  listen on 127.0.0.1 only.
"""

from rxstargate.local._errors import LocalPulsarError
from rxstargate.local._local import LocalPulsar, run_local

__all__ = ["LocalPulsar", "LocalPulsarError", "run_local"]

"""The rules of Pulsar's WebSocket service that both server sides check, written once.

Local Pulsar's gateway (``rxstargate.local``) and MemoryPulsar (``rxstargate.testing``) accept and
refuse the same paths, topic names and query parameters, with Pulsar's words:

- ``paths``: endpoint paths (v1, v2, the v3 multi-topic consumer) and topic-name completion;
- ``params``: the producer, consumer and reader query parameters, parsed as Pulsar's Java does;
- ``vocabulary``: Pulsar's enum constants and its rule for tenant and namespace names;
- ``jackson``: frame fields mapped onto Java fields as Pulsar's Jackson does, and the consumer
  command types;
- ``send_frame``: a producer's send frame read as Pulsar's handler reads it, and its acks;
- ``commands``: a consumer's or reader's commands read as Pulsar maps them, and the
  ``isEndOfTopic`` answer.

These modules import only the standard library, so a client-only install can import them; each
side maps their errors to its own refusals (an HTTP status and a reason). They are the server
side's own reading of Pulsar's sources, kept apart from the client's options and topic names so
that one mistake cannot pass the tests of both sides.
"""

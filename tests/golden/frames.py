"""Golden data of Pulsar's WebSocket API, copied from Pulsar's documentation and source.

Every side of rxstargate is tested against these, never against another: the client's frame
codec and time functions, the local gateway's encoders and decoders, and MemoryPulsar's
(``rxstargate.testing``). A mistake made the same way on two sides would pass a test of one
against the other; it cannot pass these.

Sources (see also the wire-protocol reference of the project):
- apache/pulsar-site, docs/client-libraries-websocket.md: the example frames (section "DOCS").
- apache/pulsar#10757 (a user report): an ok ack of Pulsar 2.8+ with errorCode and schemaVersion.
- apache/pulsar, pulsar-websocket data classes: ConsumerCommand (type, messageId, Integer
  permitMessages), EndOfTopicResponse (a boolean), ProducerAck.
- apache/pulsar, pulsar-common DateFormatter: ISO_OFFSET_DATE_TIME in the JVM's zone; Java prints
  seconds always and only the fraction digits it needs.
- apache/pulsar, pulsar-common NamedEntity: tenant, cluster and namespace names match
  ``^[-=:.\\w]*$`` with Java's ASCII ``\\w`` ("alphanumeric (a-zA-Z_0-9) and these special
  chars -=:.").
- PulsarApi.proto MessageIdData: ledgerId = 1, entryId = 2, batch_size = 6 (varints).
"""

from __future__ import annotations

# --- producer: client -> server (docs) -------------------------------------------------------
SEND = (
    '{"payload": "SGVsbG8gV29ybGQ=", "properties": {"key1": "value1", "key2": "value2"},'
    ' "context": "1"}'
)
SEND_PAYLOAD = b"Hello World"
SEND_PROPERTIES = {"key1": "value1", "key2": "value2"}

# --- producer: server -> client ---------------------------------------------------------------
ACK_OK_DOCS = '{"result": "ok", "messageId": "CAAQAw==", "context": "1"}'
ACK_OK_2_8 = '{"result":"ok","messageId":"CPEKEINF","context":"1","errorCode":0,"schemaVersion":0}'
# As documented; a real Pulsar puts Jackson's message in errorMsg and echoes no context for 3.
ACK_ERROR_DOCS = (
    '{"result": "send-error:3", "errorMsg": "Failed to de-serialize from JSON", "context": "1"}'
)

# --- consumer / reader: server -> client --------------------------------------------------------
CONSUMER_MESSAGE_DOCS = """{
  "messageId": "CAMQADAA",
  "payload": "hvXcJvHW7kOSrUn17P2q71RA5SdiXwZBqw==",
  "properties": {},
  "publishTime": "2021-10-29T16:01:38.967-07:00",
  "redeliveryCount": 0,
  "encryptionContext": {
    "keys": {
      "client-rsa.pem": {
        "keyValue": "jEuwS+PeUzmCo7IfLNxqoj4h7txbLjCQjkwpaw5AWJfZ2xoIdMkOuWDkOsqgFmWwxiecakS6GOZHs94x3sxzKHQx9Oe1jpwBg2e7L4fd26pp+WmAiLm/ArZJo6JotTeFSvKO3u/yQtGTZojDDQxiqFOQ1ZbMdtMZA8DpSMuq+Zx7PqLo43UdW1+krjQfE5WD+y+qE3LJQfwyVDnXxoRtqWLpVsAROlN2LxaMbaftv5HckoejJoB4xpf/dPOUqhnRstwQHf6klKT5iNhjsY4usACt78uILT0pEPd14h8wEBidBz/vAlC/zVMEqiDVzgNS7dqEYS4iHbf7cnWVCn3Hxw==",
        "metadata": {}
      }
    },
    "param": "Tfu1PxVm6S9D3+Hk",
    "compressionType": "NONE",
    "uncompressedMessageSize": 0,
    "batchSize": {"empty": false, "present": true}
  }
}"""  # noqa: E501 - verbatim
CONSUMER_MESSAGE_PUBLISHED_MILLIS = 1635548498967

# Old brokers' reader example, with the legacy time format (no zone; read as UTC).
READER_MESSAGE_DOCS = (
    '{"messageId": "CAAQAw==", "payload": "SGVsbG8gV29ybGQ=", "properties": {"key1": "value1",'
    ' "key2": "value2"}, "publishTime": "2016-08-30 16:45:57.785", "redeliveryCount": 4}'
)
LEGACY_PUBLISHED_MILLIS = 1472575557785  # 2016-08-30T16:45:57.785Z

# --- consumer: client -> server (docs) ----------------------------------------------------------
ACK = '{"messageId": "CAAQAw=="}'
NACK = '{"type": "negativeAcknowledge", "messageId": "CAAQAw=="}'
PERMIT = '{"type": "permit", "permitMessages": 100}'
END_OF_TOPIC_QUERY = '{"type": "isEndOfTopic"}'
# EndOfTopicResponse has a boolean field (the docs show a "true/false" placeholder string).
END_OF_TOPIC_ANSWERS = {True: '{"endOfTopic":true}', False: '{"endOfTopic":false}'}

# --- message ids: base64 of MessageIdData -> (ledger, entry) ------------------------------------
MESSAGE_IDS = {
    "CAAQAw==": (0, 3),  # 08 00 10 03
    "CAMQADAA": (3, 0),  # 08 03 10 00 30 00 (batch_size 0)
    "CPEKEINF": (1393, 8835),  # 08 f1 0a 10 83 45
}

# --- times: ISO_OFFSET_DATE_TIME texts and their epoch milliseconds ------------------------------
TIMES = [
    ("2021-10-29T16:01:38.967-07:00", 1635548498967),  # the docs' publishTime
    ("2021-10-29T23:01:38.967Z", 1635548498967),
    ("2021-10-29T23:01:38.96Z", 1635548498960),  # only the digits needed
    ("2021-10-29T23:01:38.5Z", 1635548498500),
    ("2021-10-29T23:01:38Z", 1635548498000),  # no fraction when the millis are 0
    ("2021-10-29T23:01:00Z", 1635548460000),  # seconds are always printed
    ("1970-01-01T00:00:00Z", 0),
    ("2021-10-30T01:31:38.967+02:30", 1635548498967),
]
# The texts a UTC JVM writes for these instants (every Z text above).
UTC_TEXTS = [(text, millis) for text, millis in TIMES if text.endswith("Z")]
# Texts that ISO_OFFSET_DATE_TIME refuses to parse (a producer's eventTime -> send-error:7).
REFUSED_TIMES = [
    "2021-10-29T23:01:38.967",  # no offset
    "2021-10-29 23:01:38.967Z",  # no T
    "2016-08-30 16:45:57.785",  # the legacy format
    "2021-10-29T23:01:38.967+25:00",  # offset beyond 18 hours
    "yesterday",
]

# --- names: tenant, cluster and namespace parts (NamedEntity) -----------------------------------
NAMED_ENTITIES = ["public", "default", "my-tenant_1", "a=b:c.d", "ABC123"]
NOT_NAMED_ENTITIES = ["t\u00e9nant", "name with space", "public\n", "a%2Fb", "x/y", "caf\u00e9"]

"""Notebook views: messages and acks as HTML tables, and ``topic.live()``'s updating view.

Importing it makes ``Message`` and ``ProducerAck`` show as tables in Jupyter (their
``_repr_html_``); their first ``_repr_html_`` imports it, so that is always the case.
"""

from rxstargate.models import Message, ProducerAck, register_html_view
from rxstargate.notebook._lists import Acks, Messages
from rxstargate.notebook._live import LiveView
from rxstargate.notebook._tables import acks_html, messages_html, payload_preview

__all__ = ["Acks", "LiveView", "Messages", "acks_html", "messages_html", "payload_preview"]

register_html_view(Message, messages_html)
register_html_view(ProducerAck, acks_html)

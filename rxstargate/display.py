"""Notebook tables of messages and acks: see ``rxstargate.notebook``, where they live now.

Kept so that ``from rxstargate.display import ...`` goes on working.
"""

from rxstargate.notebook import Acks, Messages, acks_html, messages_html, payload_preview

__all__ = ["Acks", "Messages", "acks_html", "messages_html", "payload_preview"]

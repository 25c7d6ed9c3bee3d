"""Lists of messages and of acks that show as tables in notebooks; messages convert to pandas."""

from __future__ import annotations

from typing import Any

from rxstargate.models import Message, ProducerAck
from rxstargate.notebook._tables import acks_html, messages_html, payload_preview

__all__ = ["Acks", "Messages"]


class Messages(list[Message[Any]]):
    """A list of messages that shows as a table in notebooks (``topic.peek()`` returns one).

    Example:
        >>> Messages([]).to_records()
        []
    """

    def _repr_html_(self) -> str:
        return messages_html(self)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per message, payload as bytes and its text preview."""
        return [
            {
                "topic": str(m.topic),
                "message_id": str(m.message_id),
                "key": m.key,
                "payload": m.payload,
                "text": payload_preview(m.payload, limit=10_000),
                "size": len(m.payload),
                "properties": dict(m.properties),
                "publish_time": m.publish_time,
                "event_time": m.event_time,
                "redelivery_count": m.redelivery_count,
            }
            for m in self
        ]

    def to_pandas(self) -> Any:
        """A pandas DataFrame of :meth:`to_records` (needs pandas: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "to_pandas() needs pandas: pip install 'rxstargate[notebook]', or in a clone"
                " of rxstargate: pip install '.[notebook]'"
            ) from exc
        return pd.DataFrame.from_records(self.to_records())


class Acks(list[ProducerAck]):
    """A list of producer acks that shows as a table in notebooks.

    Example:
        >>> acks = Acks()  # doctest: +SKIP
        >>> producer.acks.subscribe(acks.append)  # doctest: +SKIP
        >>> acks  # doctest: +SKIP
    """

    def _repr_html_(self) -> str:
        return acks_html(self)

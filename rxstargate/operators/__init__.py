"""Processing operators: ordinary RxPY operators over streams of Messages that never leak credit.

Each is a function returning ``Callable[[Observable], Observable]`` for ``.pipe``. None of them
settles a message before its work is done; credit is the backpressure, so their queues are
bounded by the stream's ``max_in_flight``.

Example:
    >>> from rxstargate.operators import Retry, process  # doctest: +SKIP
    >>> topic.observe("billing", subscription_type="Shared").pipe(  # doctest: +SKIP
    ...     process(charge, concurrency=8, key_ordered=True, retry=Retry(attempts=3)),
    ... ).subscribe(rs.acknowledger())
"""

from rxstargate.operators._batch import Batch, batch
from rxstargate.operators._failure import DeadLetter, dead_letter
from rxstargate.operators._filter import filter
from rxstargate.operators._outcomes import Leave, MessageHandler, Nack, Processed
from rxstargate.operators._process import process
from rxstargate.operators._publish import publish
from rxstargate.operators._retry import Retry
from rxstargate.operators._stats import ProcessingStats

__all__ = [
    "Batch",
    "DeadLetter",
    "Leave",
    "MessageHandler",
    "Nack",
    "Processed",
    "ProcessingStats",
    "Retry",
    "batch",
    "dead_letter",
    "filter",
    "process",
    "publish",
]

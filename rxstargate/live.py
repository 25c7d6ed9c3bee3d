"""``topic.live()``'s view: see ``rxstargate.notebook``, where it lives now.

Kept so that ``from rxstargate.live import LiveView`` goes on working.
"""

from rxstargate.notebook import LiveView

__all__ = ["LiveView"]

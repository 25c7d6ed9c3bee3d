"""rxstargate's implementation of Pulsar's WebSocket service, in front of a broker."""

from rxstargate.local._gateway._server import Gateway

__all__ = ["Gateway"]

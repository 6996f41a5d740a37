"""lanpeer: the daemon (discovery, QUIC transport, library index, downloads, installs, control)."""

__version__ = "0.1.0"

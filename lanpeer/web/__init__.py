"""The web UI of lanpeerd (SPEC §9b): the library, the task center, peers and doctor in a
browser, served by the daemon itself. See ``server`` (aiohttp), ``access`` (token, Host and
Origin), ``api`` (the page's requests, all through the control commands) and ``live``."""

from lanpeer.web.server import WebUI

__all__ = ["WebUI"]

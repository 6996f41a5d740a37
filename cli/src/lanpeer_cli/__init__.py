"""lanpeer_cli: ``peer-cli``, a thin client of the lanpeerd control socket.

Never imports lanpeer.
"""

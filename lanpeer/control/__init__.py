"""The control side of lanpeerd: the Unix socket server, command dispatch, event fan-out."""

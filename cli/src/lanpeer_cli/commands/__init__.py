"""peer-cli's commands, one module per group; importing a module registers its commands.

``lanpeer_cli.main`` imports them in the order ``peer-cli --help`` lists them.
"""

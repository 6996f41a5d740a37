"""The peer network: identity, QUIC sessions, discovery, library sync, chunk serving."""

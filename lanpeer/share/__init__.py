"""HTTP share: a game as one resumable ZIP over HTTP (SPEC §9c)."""

"""Installs: safe archive extraction, crash-safe install/update/uninstall/remove and download
commits recorded in a per-game intent log, and the startup recovery that converges them."""

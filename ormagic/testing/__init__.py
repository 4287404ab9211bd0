"""Test support shipped with ormagic: a loopback fake OpenRouter server."""

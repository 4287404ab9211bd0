"""``python -m ormagic.testing``: run the fake OpenRouter server in the foreground."""

from __future__ import annotations

from .fake_openrouter import main

if __name__ == "__main__":
    raise SystemExit(main())

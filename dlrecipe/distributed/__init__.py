"""Local process supervision shared by ``train --workers`` and ``tune --workers`` (see docs/architecture.md)."""

"""The book's chapters as a package only so that its conftest.py imports as ``book.conftest``, not ``conftest`` (tests/ imports its own)."""

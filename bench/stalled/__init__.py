"""bench/stalled_reader.py in parts: servers, clients, runs, checks, report."""

__all__: list[str] = []

"""The sans-I/O sync engine: pure logic that plans a dataset's sync (no asyncio, sqlite, network)."""

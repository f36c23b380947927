"""The sans-I/O sync engine: pure logic planning a dataset's sync (no asyncio, sqlite, network)."""

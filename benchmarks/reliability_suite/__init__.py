"""The reliability suite behind ``python benchmarks/reliability.py``.

* `scenarios`: generated multi-device scenarios against a real server with injected faults,
  checked by the oracle in `oracle`;
* `faults`: the in-process TCP relay that drops, resets and truncates connections;
* `kills`: device processes SIGKILLed mid-write and mid-sync;
* `fuzz`: generated and mutated inputs to the HTTP, WebSocket and identity endpoints.
"""

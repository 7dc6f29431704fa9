"""The node-local cache: L1 in memory (W-TinyLFU), L2 in Redis, invalidation across nodes."""

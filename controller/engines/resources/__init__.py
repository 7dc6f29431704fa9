"""ResourceEngine: right-sizing, efficiency, bin-packing and capacity planning (pure)."""

"""The thin Faust runtime: decode, run the engine, encode, produce."""

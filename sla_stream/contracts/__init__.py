"""Contract files (YAML, version 1) mapped once onto the engine's immutable model."""

from sla_stream.contracts.loader import ContractError, load_dir

__all__ = ["ContractError", "load_dir"]

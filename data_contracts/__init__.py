"""Great Expectations (GX Core 1.x) contracts: one suite per dataset or stage output, built in code."""

from data_contracts.runner import Contract, ContractError, ContractResult, enforce, run_contract

__all__ = ["Contract", "ContractError", "ContractResult", "enforce", "run_contract"]

"""Units of work: plain functions for the logic, thin Prefect tasks around them for the I/O."""

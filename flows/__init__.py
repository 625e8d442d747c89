"""Prefect flows: they compose tasks and carry one typed parameter model each."""

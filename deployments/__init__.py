"""Deployments of the imgsearch flows: schedules, the ratings event trigger, parameters (see serve.py)."""

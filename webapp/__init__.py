"""The web page and JSON API over the search functions (FastAPI)."""

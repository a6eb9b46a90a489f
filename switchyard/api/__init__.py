"""The HTTP API (FastAPI). ``create_app()`` builds it; ``switchyard api`` serves it with uvicorn."""

from switchyard.api.app import create_app

__all__ = ["create_app"]

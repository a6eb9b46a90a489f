"""The agent pool: LangGraph graphs run as jobs on threads, with Postgres checkpoints.

``schemas`` (the task's message) is light; ``runs`` (which imports LangGraph) is imported by the worker.
"""

"""The end-to-end demo of ``make demo``, one module per step; ``run.run_demo`` runs them in order."""

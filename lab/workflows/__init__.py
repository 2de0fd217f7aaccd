"""The lab's UI workflows, one per claim (``lab_*.json``), written by ``python -m lab.workflows.build``."""

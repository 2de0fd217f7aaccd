"""The lab: a procedural toy world, small models trained on it here, and the measured claims of each paper.

Never imported by the pack (``nodes/``, ``core/``). ``python -m lab.train`` trains the models (cached under
``.cache/lab/``); ``python -m lab.report`` measures every claim and prints the table.
"""

"""One module per command: its source, its operation and its row schema, wired to the engine.

Commands return a :class:`~worker.commands.outcome.CommandOutcome`; ``cli.py`` prints it."""

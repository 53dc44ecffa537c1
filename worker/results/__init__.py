"""The results contract: row schemas, the three formats (Parquet, CSV, JSON Lines), files that
appear atomically, and part files committed with the checkpoint. Every command's output, and
every results file a command reads, goes through here."""

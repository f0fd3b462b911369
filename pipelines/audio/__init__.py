"""`seqssm audio`: raw audio, one quantised sample per token. config.py holds the job's schema, train.py the
Lightning job, infer.py scoring, run loading and generation (no Lightning), cli.py the subcommand."""

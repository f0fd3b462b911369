"""`seqssm lm`: a byte-level language model (the MambaByte setting) on any file. config.py holds the job's
schema, train.py the Lightning job, sample.py continuation of a prompt, cli.py the subcommand."""

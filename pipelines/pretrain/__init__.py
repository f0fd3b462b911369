"""`seqssm pretrain`: language-model pretraining on long sequences of any domain. config.py holds the job's
schema, train.py the Lightning job, heldout.py the held-out scores and the masking (no Lightning),
checkpoints.py the crash-safe checkpoints, cli.py the subcommand."""

"""The synthetic tasks of `seqssm eval TASK` (selective copying, induction heads, copy, phone book): config.py
holds the job schemas, tasks.py the task generators, train.py the training and scoring at many lengths (a plain
torch loop), cli.py the subcommand."""

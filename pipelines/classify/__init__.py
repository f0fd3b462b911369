"""`seqssm classify`: sequence classification of a domain's labelled sequences (DNA by default). config.py holds
the job's schema, train.py the Lightning job, infer.py evaluation / prediction / embedding of a trained run (no
Lightning), cli.py the subcommand."""

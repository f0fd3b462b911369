"""seqssm.pipelines (the folder pipelines/ of the source tree, installed as seqssm.pipelines): the command line and
the jobs, one folder per job (lm, classify, audio, pretrain, synthetic) plus the shared training toolkit, run
folders and benchmarks. The only layer that imports Lightning. Map: docs/architecture.md."""

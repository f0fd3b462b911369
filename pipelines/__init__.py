"""seqssm.pipelines: the command line and the Lightning jobs. The only layer that imports Lightning."""

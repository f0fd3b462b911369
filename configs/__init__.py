"""seqssm.configs (the folder configs/ of the source tree): the shipped job YAMLs, `<job>_<name>.yaml`, each
mirroring its job's schema (pipelines/<job>/config.py) key for key; read with `--config <job>_<name>`."""

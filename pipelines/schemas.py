"""Which job schema reads which shipped config: configs/<job>_<name>.yaml is read by the job named by its prefix,
so that every shipped YAML can be checked against the schema of the command that reads it (tests do)."""

from __future__ import annotations

from seqssm.pipelines.audio.config import AudioJobConfig, ClassifierJobConfig
from seqssm.pipelines.classify.config import ClassifyJobConfig
from seqssm.pipelines.jobconfig import UsageError
from seqssm.pipelines.lm.config import LMJobConfig
from seqssm.pipelines.pretrain.config import PretrainJobConfig
from seqssm.pipelines.synthetic.config import EVAL_JOBS

# job prefix of a shipped config file name -> the schema of the command that reads it; the longest prefix wins,
# so eval_induction_heads.yaml is read by the induction-heads job
SCHEMAS = {"lm": LMJobConfig, "classify": ClassifyJobConfig, "audio": AudioJobConfig, "pretrain": PretrainJobConfig,
           "audio_classifier": ClassifierJobConfig}
SCHEMAS.update({f"eval_{task.replace('-', '_')}": cls for task, cls in EVAL_JOBS.items()})


def schema_for_file(name: str):
    """The schema for a shipped config file `<job>_<rest>.yaml` (or `<job>.yaml`), or UsageError."""
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    found = [k for k in SCHEMAS if stem == k or stem.startswith(k + "_")]
    if not found:
        prefix = stem.split("_", 1)[0]
        raise UsageError(f"{name}: no job schema for prefix {prefix!r} (known: {', '.join(sorted(SCHEMAS))})")
    return SCHEMAS[max(found, key=len)]

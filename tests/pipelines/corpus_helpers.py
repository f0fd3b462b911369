"""The bad-input corpus of issue 15: small generated files of every kind a command reads, each with what the
command must do with it (run, or refuse with one line naming the file and line), and the checks of a refusal."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

MEGA = 1_000_000
_RANDOM_BASES = bytes(np.frombuffer(b"ACGT", np.uint8)[np.random.default_rng(0).integers(0, 4, 20000)])

# name -> (file name, bytes, None (accepted) or the text the one-line error must hold)
FASTA = {
    "duplicate_id": ("dup.fa", b">a label=0\nACGT\n>b label=1\nGGCC\n>a label=0\nTTAA\n", "dup.fa:5: record name 'a' used twice"),
    "empty_record": ("empty_rec.fa", b">a label=0\nACGT\n>b label=1\n>c label=1\nGG\n", "empty_rec.fa:3: record 'b' has no sequence"),
    "not_iupac_plain": ("junk.fa", b">a label=0\nACGTACGT\n>b label=1\nACXGT\n", "junk.fa:4: record 'b': character 'X'"),
    "not_iupac_gzip": ("junk.fa.gz", gzip.compress(b">a label=0\nACGTACGT\n>b label=1\nACXGT\n"), "junk.fa.gz:4: record 'b': character 'X'"),
    "text_before_header": ("nohead.fa", b"ACGT\n>a label=0\nACGT\n", "nohead.fa:1: text before the first FASTA header"),
    "binary": ("bin.fa", b">a label=0\nAC\x00\x01GT\n", "bin.fa:2: not a text file"),
    "utf16": ("u16.fa", ">a label=0\nACGT\n".encode("utf-16"), "u16.fa:1: not a text file"),
    "truncated_gzip": ("cut.fa.gz", gzip.compress(b">a label=0\n" + _RANDOM_BASES + b"\n")[:2000], "cut.fa.gz:"),
    "empty_file": ("nothing.fa", b"", "nothing.fa: no FASTA records"),
}

GOOD_FASTA = (">Chr1 label=0 mixed Case\r\nACGTNNNNNNNNNNacgtacgtNN\r\nacgtRYKMacgtacgtacgtACGT\r\nACG\r\n"
              ">chr1 label=1\r\n" + "ACGTTGCA" * 2000 + "\r\n>chr2 label=0\r\n" + "ggccNNNNaatt" * 1000 + "\r\n")

CSV = {
    "not_iupac": ("junk.csv", b"sequence,label\nACGT,0\nAC-GT,1\n", "junk.csv:3: character '-' at column 3"),
    "empty_sequence": ("noseq.csv", b"sequence,label\nACGT,0\n,1\n", "noseq.csv:3: empty sequence"),
    "not_utf8": ("latin.csv", b"sequence,label\nACGT,0\nAC\xe9GT,1\n", "latin.csv:3: not a text file"),
    "nul": ("nul.csv", b"sequence,label\nACGT,0\nAC\x00GT,1\n", "nul.csv:3: not a text file (NUL bytes)"),
    "header_only": ("head.csv", b"sequence,label\n", "head.csv: no sequences (only a header)"),
    "empty_file": ("empty.csv", b"", "empty.csv:1: empty file"),
    "duplicate_id": ("dupid.csv", b"id,sequence,label\nx,ACGT,0\ny,GGCC,1\nx,TTAA,0\n", "dupid.csv:4: id 'x' used twice"),
    "no_sequence_column": ("noseqcol.tsv", b"seq\tlabel\nACGT\t0\n", "noseqcol.tsv:1: the header must name"),
}
# refused only where labels are needed (train, eval); predict and embed do not read labels
CSV_LABELLED = {
    "label_column_typo": ("lable.csv", b"sequence,lable\nACGT,0\nGGCC,1\n", "lable.csv:1: the header must name the columns 'sequence' and 'label'"),
    "missing_label": ("nolab.csv", b"sequence,label\nACGT,0\nGGCC,\n", "nolab.csv:3: missing label"),
}

GOOD_TSV = ("\ufeffName\tExtra\tSequence\tLabel\r\nr1\tx\tacgtNNNNACGT\t0\r\n\r\nr2\t\"q, r\"\tGGCCggcc\t1\r\n"
            "r3\tz\t" + "ACGT" * 5000 + "\t1\r\n")  # BOM, CRLF, any column order, quotes, a blank row, a long row


def write(folder: Path, name: str, data: bytes | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return p


def mega_sequence(seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return "".join(np.array(list("ACGTacgtN"))[rng.integers(0, 9, MEGA)])


def snapshot(folder: Path) -> dict:
    """Every path under `folder` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def wav_cases(folder: Path) -> dict[str, tuple[Path, str | None]]:
    """name -> (path, None or error text): WAVs users have, good and bad."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    t = np.arange(44100) / 44100
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 220 * t)], 1).astype(np.float32)
    sf.write(folder / "stereo_44k.wav", stereo, 44100)
    out["stereo_44k"] = (folder / "stereo_44k.wav", None)
    sf.write(folder / "silent.wav", np.zeros(8000, np.float32), 8000)
    out["silent"] = (folder / "silent.wav", None)
    sf.write(folder / "stereo_44k.flac", stereo, 44100)
    out["stereo_44k_flac"] = (folder / "stereo_44k.flac", None)
    sf.write(folder / "stereo_44k.ogg", stereo, 44100)
    out["stereo_44k_ogg"] = (folder / "stereo_44k.ogg", None)
    flac = (folder / "stereo_44k.flac").read_bytes()
    out["truncated_flac"] = (write(folder, "cut.flac", flac[:len(flac) // 3]), "cut.flac")
    out["flac_named_wav"] = (write(folder, "really_flac.wav", flac), None)  # the content decides, not the name
    full = folder / "full.wav"
    sf.write(full, 0.3 * np.sin(np.arange(8000) / 5.0).astype(np.float32), 8000)
    raw = full.read_bytes()
    full.unlink()
    out["truncated"] = (write(folder, "truncated.wav", raw[:len(raw) // 2]), "truncated.wav: truncated WAV")
    out["header_only"] = (write(folder, "header_only.wav", raw[:44]), "header_only.wav")
    out["text"] = (write(folder, "text.wav", b"this is not audio\n"), "text.wav: not a readable audio file")
    out["empty"] = (write(folder, "empty.wav", b""), "empty.wav: empty file")
    nan = np.full(800, np.nan, np.float32)
    sf.write(folder / "nan.wav", nan, 8000, subtype="FLOAT")
    out["nan"] = (folder / "nan.wav", "nan.wav: contains NaN")
    return out


YAML = {
    "not_yaml": ("junk.yaml", b"model: [unclosed\n  d_model: 3\n", "not valid YAML"),
    "unknown_key": ("typo.yaml", b"trian:\n  max_steps: 3\n", "trian"),
    "wrong_type": ("type.yaml", b"model:\n  d_model: wide\n", "model.d_model"),
    "top_level_list": ("list.yaml", b"- a\n- b\n", "expected a mapping"),
    "binary": ("bin.yaml", b"\x00\x01\x02\xff\xfe", "bin.yaml"),
}

"""Command-line plumbing: logging set-up, one-message errors for stages, and the `lmtune` console command."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from lmtune.errors import Interrupted, LmtuneError

logger = logging.getLogger("lmtune")


def setup_logging() -> None:
    """Readable INFO logs from lmtune; transformers, datasets and MLflow only speak up for warnings."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    rank0 = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 logs progress
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        level=logging.INFO if rank0 else logging.WARNING, force=True)
    # transformers and datasets read these when imported; a stage imports them only when it needs them (the data
    # stages start in about a second without them), so they are not imported here
    os.environ["TRANSFORMERS_VERBOSITY"] = os.environ["DATASETS_VERBOSITY"] = "warning"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # weight loading/saving bars; the training bar stays
    if "transformers" in sys.modules:  # already imported: tell it directly
        transformers = sys.modules["transformers"]
        transformers.logging.set_verbosity_warning()
        transformers.utils.logging.disable_progress_bar()
    if "datasets" in sys.modules:
        sys.modules["datasets"].logging.set_verbosity_warning()
    for name in ("mlflow", "alembic", "urllib3", "filelock"):
        logging.getLogger(name).setLevel(logging.WARNING)


def stage_parser(doc: str | None, inputs: list[str], outputs: list[str]) -> argparse.ArgumentParser:
    """argparse for a stage: positional input and output paths (from dvc.yaml) and --params."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in inputs + outputs:
        parser.add_argument(name, type=Path)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: %(default)s)")
    return parser


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); a user error becomes one message on stderr and exit code 2, no traceback. Stages
    write their outputs atomically (and dvc.yaml marks them `persist`), so the message says they are unchanged."""
    from lmtune.io import KEPT, WRITE_ERRNOS, write_error

    try:
        main()
    except Interrupted as err:
        logger.error("%s; %s", err, KEPT)
        sys.exit(130)
    except LmtuneError as err:
        logger.error("%s", err if KEPT in str(err) else f"{err}; {KEPT}")
        sys.exit(2)
    except OSError as err:  # a full disk or an unwritable folder met outside an atomic write (checkpoints, caches)
        if err.errno not in WRITE_ERRNOS:
            raise
        logger.error("%s", write_error(err, err.filename or "the output folder"))
        sys.exit(2)
    except KeyboardInterrupt:
        logger.error("interrupted")
        sys.exit(130)


def _predict(args: argparse.Namespace) -> None:
    """`lmtune predict`: a bad model directory or input line is one message and exit code 2. Not through
    run_stage's message, which says a stage's outputs are unchanged: predict writes only to stdout."""
    try:
        _predict_lines(args)
    except LmtuneError as err:
        logger.error("%s", err)
        sys.exit(2)


def _predict_lines(args: argparse.Namespace) -> None:
    """Input rules: lmtune.inference.read_requests; every request is checked before the model loads."""
    import transformers

    from lmtune.inference import Predictor, check_records, read_model_info, read_requests

    transformers.utils.logging.disable_progress_bar()  # stdout is JSON lines; keep stderr quiet too
    if args.batch_size < 1:
        raise LmtuneError(f"--batch-size {args.batch_size}: must be at least 1")
    _, spec, fields = read_model_info(args.model, "--model")  # a missing or incomplete directory: one line
    try:
        data = args.input.read_bytes() if args.input else sys.stdin.buffer.read()
    except FileNotFoundError:
        raise LmtuneError(f"--input {args.input}: no such file; give a text or JSONL file, or pipe the input to "
                          f"stdin") from None
    except OSError as err:  # a directory, no permission, ...
        raise LmtuneError(f"--input {args.input}: cannot read it ({err.strerror}); give a readable text or JSONL "
                          f"file") from None
    records, names = read_requests(data, str(args.input) if args.input else "stdin")
    check_records(records, fields, spec, names)  # before the model loads: a bad line 9000 costs no load time
    predictor = Predictor(args.model, batch_size=args.batch_size, what="--model")
    try:
        for row in predictor.predict(records, names):
            print(json.dumps(row, ensure_ascii=False))
        sys.stdout.flush()
    except BrokenPipeError:  # `lmtune predict ... | head`: the reader has gone; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _preset(args: argparse.Namespace) -> None:
    from lmtune.config import apply_preset, load_params, read_preset

    overrides = read_preset(args.preset)
    apply_preset(load_params(args.params), overrides, source=str(args.preset))  # every key and value checked
    print(" ".join(f"-S {key}={value}" for key, value in overrides.items()))


def _new(args: argparse.Namespace) -> None:
    from lmtune.scaffold import new_pipeline

    written = new_pipeline(args.dir, args.task, args.data, args.target)
    folder = written[0].parent.relative_to(Path.cwd().resolve()).as_posix()
    print(f"wrote {', '.join(f'{folder}/{p.name}' for p in written)}\n"
          f"run it: dvc repro {folder}/dvc.yaml   (every pipeline: dvc repro --all-pipelines)\n"
          f"change a param: dvc exp run {folder}/dvc.yaml -S {folder}/params.yaml:fine_tune.epochs=3")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lmtune", description="lmtune command-line tools")
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser("predict", help="predict with a fine-tuned model; JSON lines in and out",
                             description="Reads one text per line, or one JSON object per line with the task's "
                                         "input fields (text, plus text_pair for a model trained on pairs; question "
                                         "and context for qa; source or text for seq2seq; tokens or text for ner; "
                                         "messages, instruction or text for sft), from --input or stdin (UTF-8), and "
                                         "prints the input with the prediction added as one JSON object per line. "
                                         "A line starting with { is JSON, any other line one plain text; text fields "
                                         "must be non-empty strings; blank lines are skipped; other keys are copied "
                                         "to the output.")
    predict.add_argument("--model", type=Path, default=Path("models/model"), help="fine-tuned model directory")
    predict.add_argument("--input", type=Path, help="text or JSONL file (default: stdin)")
    predict.add_argument("--batch-size", type=int, default=64)
    preset = sub.add_parser("preset", help="print a params preset as `dvc exp run` -S arguments",
                            description="Checks a preset file (section.key: value lines, e.g. presets/sst2-full.yaml) "
                                        "against params.yaml and prints it as -S arguments: "
                                        "dvc exp run $(lmtune preset presets/sst2-full.yaml)")
    preset.add_argument("preset", type=Path, help="preset YAML file")
    preset.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file the preset applies to")
    new = sub.add_parser("new", help="add a pipeline folder (own dvc.yaml, params.yaml, reports/, models/)",
                         description="Writes DIR/dvc.yaml and DIR/params.yaml from the project's, so one repository "
                                     "holds several fine-tunes side by side (e.g. sentiment and NER). Stages run from "
                                     "the project root; outputs go under DIR; MLflow experiment: DIR. Run from the "
                                     "project root.")
    new.add_argument("dir", type=Path, help="the pipeline folder, e.g. pipelines/ner")
    new.add_argument("--task", required=True, help="task.name: classification, ner, qa, summarization, ...")
    new.add_argument("--data", required=True, type=Path, help="input file, relative to the project root")
    new.add_argument("--target", type=Path, help="seq2seq with line-aligned text files: the target file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    run_stage(lambda: {"predict": _predict, "preset": _preset, "new": _new}[args.command](args))


if __name__ == "__main__":
    main()

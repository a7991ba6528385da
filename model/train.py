"""`train`: fine-tune a BERT-family encoder to classify e-mails, under the SageMaker contract.

main() checks the inputs (hyperparameters, channels) first, with neither torch nor
transformers loaded, so that bad input fails in a second rather than after the 5 s those
imports take; then it launches one process per GPU, or runs the loop (model/fit.py) itself.
"""

import logging
import traceback

from model.contract import InputError, SageMakerPaths, read_config, write_failure
from model.data import load_datasets
from model.hyperparameters import parse_hyperparameters
from model.preemption import EXIT_CODE, Interrupted
from model.settings import Settings

log = logging.getLogger("postwerk.train")


def main() -> int:
    """Exit code 0 on success; otherwise the reason is in output/failure."""
    settings = Settings()
    paths = SageMakerPaths(settings.base_dir)
    try:
        hp = parse_hyperparameters(read_config(paths.hyperparameters_file))
        data = load_datasets(paths, hp)
        from model import distributed, selection  # torch and transformers: for good input

        resources = read_config(paths.resource_config_file)
        topology = distributed.Topology.from_resource_config(resources, settings.processes_per_host)
        if topology.world_size > 1 and not distributed.under_launcher():
            return with_reason(paths, distributed.launch(topology))
        selection.train(paths, hp, data)
        return 0
    except InputError as error:
        return fail(paths, str(error), exit_code=1)
    except Interrupted:
        log.info("stopped on SIGTERM; the checkpoint is in %s", paths.checkpoint_dir)
        return EXIT_CODE
    except Exception as error:
        traceback.print_exc()
        return fail(paths, f"internal error: {type(error).__name__}: {error}", exit_code=2)


def fail(paths: SageMakerPaths, reason: str, exit_code: int) -> int:
    log.error("training failed: %s", reason)
    write_failure(paths, reason)
    return exit_code


def with_reason(paths: SageMakerPaths, exit_code: int) -> int:
    """The workers' exit code; a failure that no worker explained gets a reason."""
    if exit_code and not paths.failure_file.exists():
        write_failure(paths, f"a training process exited with code {exit_code}")
    return exit_code

"""The `postwerk` command: the pipeline on this machine, its stack, its models, its mail,
through boto3 (the local AWS or AWS alike).

Each command group is a module beside the one that holds its AWS calls; every command is
registered the same way, wrapped in the one place that turns failures into a red line and
an exit code (postwerk/output.py): 0 done; 1 the job or call ran and failed (its reason
is printed); 2 the command could not start (bad input, AWS unreachable or refusing).
"""

import typer

from postwerk import (
    cost_commands,
    dataset_commands,
    deploy_commands,
    local_commands,
    mailbox_commands,
    model_commands,
    pipeline_commands,
    reply_commands,
    sagemaker_commands,
)
from postwerk.output import handled

GROUPS = (
    local_commands,
    pipeline_commands,
    deploy_commands,
    cost_commands,
    sagemaker_commands,
    model_commands,
    dataset_commands,
    reply_commands,
)

app = typer.Typer(
    help="postwerk: route customer e-mails with a BERT classifier on SageMaker (local or AWS).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
for group in GROUPS:
    for name, command in group.COMMANDS.items():
        app.command(name)(handled(command))
app.add_typer(dataset_commands.dataset_app, name="dataset")
app.add_typer(mailbox_commands.mailbox_app, name="mailbox")

"""The command line: parse, call, print. Only this module catches broadly and maps to exit codes."""

from __future__ import annotations

import click

from policyengine import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="policyengine")
def main() -> None:
    """Git-native release engine for ML models served on Kubernetes."""

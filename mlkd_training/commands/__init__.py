"""Training-side ``mlkd`` subcommands (one module each, registered in ``mlkd_tracker.cli.COMMANDS``)."""

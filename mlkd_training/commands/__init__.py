"""Training-side ``mlkd`` subcommands, one module each (``add_arguments`` + ``run``), registered in
``mlkd_tracker.cli.COMMANDS`` and imported on demand."""

"""Training-side ``mlkd`` subcommands, one module each (``add_arguments`` + ``run``), imported on demand."""

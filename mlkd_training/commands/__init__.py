"""Training-side ``mlkd`` subcommands (one module each, imported only when chosen)."""

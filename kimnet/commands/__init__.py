"""The programs behind the ``kimnet`` subcommands and the ``pipelines/`` scripts."""

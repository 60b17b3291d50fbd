"""*Système*: diagnostics, configuration backup and restore: being written."""


def register(app, web) -> None:
    pass

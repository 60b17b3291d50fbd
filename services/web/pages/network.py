"""*Réseau* (manual 10.2): being written."""


def register(app, web) -> None:
    pass

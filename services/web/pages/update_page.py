"""*Mise à jour* (manual 10.5): being written."""


def register(app, web) -> None:
    pass

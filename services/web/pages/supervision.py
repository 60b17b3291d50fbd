"""*Supervision* (manual 10.4): being written."""


def register(app, web) -> None:
    pass

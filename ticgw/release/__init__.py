"""Releases of ticgw on a gateway: where they live, which one runs, and the record of an update.

:mod:`.layout` (the releases root, the ``current`` link, complete releases), :mod:`.record`
(``update.json``, what makes a power cut harmless), :mod:`.install` (a verified package
installed offline as a fresh release). The launcher (:mod:`ticgw.launch`) and the update
service (``services/update``) are built on these.
"""

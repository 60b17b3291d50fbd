"""The TIC library: everything about the meters' Télé-Information Client, with no knowledge of
the gateway around it (ground floor, beside the bus).

- ``codec``: the incremental frame decoder (checksums by separator, horodates) and the encoder.
- ``families``: which meter family sent a frame, and its serial number.
- ``horodate``: horodates and the Linky's STGE status word.
- ``catalogue``: the labels of each family, with French descriptions, units and default actions.
- ``definitions``: definition files (``index;label;description;unit;action``): parse, render,
  the shipped one per family, a generated one for an unknown meter.
"""

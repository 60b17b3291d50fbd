"""The acquisition service: TIC inputs, sampling, alarms, the spool, the front panel."""

"""Where events come from: dataset files (:mod:`.formats` is the one list of formats and their
event-type mappings, :mod:`.sources` reads a file in any of them), the synthetic generator
(:mod:`.synthetic`) and the event log read back for training (:mod:`.eventlog`)."""

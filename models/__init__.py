"""streamrec's model library, in River's style: every model follows :mod:`models.base`.

No settings, no Faust, no Kafka here: models learn from and rank for plain records,
so the same code runs in the worker, in the trainer and in offline evaluation.
"""

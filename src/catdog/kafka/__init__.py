"""Kafka, as the kit uses it: ``clients`` (producers, consumers, topics, readers), ``records`` (headers, keys
and who signed a record), ``photos`` (sending and decoding images) and ``results`` (the classifier's
results and dead letters as learners read them)."""

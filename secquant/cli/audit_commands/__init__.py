"""One module per audit kind (``mechanism``, ``membership``); each defines ``register``."""

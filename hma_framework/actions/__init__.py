"""The actioner: labels on matches, rules over them, configured handlers and their deliveries.

``labels`` says what a match is (bank, tags, signal type, exchange, distance, the
submission's additional fields); ``rules`` decides which actions those labels call for;
``handlers`` keeps the configured handler instances; ``deliveries`` and ``delivering`` record
each action and carry it out on the ``action`` queue, retrying until it succeeds or gives up.
"""

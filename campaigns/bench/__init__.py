"""``manage.py bench``: the figures of the issue "Speed of the everyday path", each with its
ratio to its target, measured in one run (see README, "Benchmarks").

One module per scenario (``floor``, ``trigger``, ``delivery``, ``priority``, ``campaign``,
``mail``, ``imports``), shared parts in ``base``, and every import of Notifier's internals in
``adapter``. ``children`` and ``smtp_sink`` run in processes of their own and import no
Django, so this package's ``__init__`` imports nothing either.
"""

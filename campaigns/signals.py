"""Signals sent once per dispatched batch (never per message), after its results are saved.

Each receives ``messages``: the Message instances of the batch (all of them for
``messages_sent``; those now ``sent`` for ``messages_succeeded``; those ``failed`` or
``broken`` for ``messages_failed``). Receivers must not call providers or loop queries.
"""

from django.dispatch import Signal

messages_sent = Signal()
messages_succeeded = Signal()
messages_failed = Signal()

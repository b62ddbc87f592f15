"""RQ job functions. They are thin: they take ids, enter the organization's scope, call services.

Importing this package registers every job name with the outbox (``comptoir.platform.outbox``).
"""

from comptoir.jobs import mail as mail

__all__ = ["mail"]

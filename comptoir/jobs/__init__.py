"""RQ job functions and periodic sweeps. They are thin: they take ids, enter the organization's
scope, call services.

Importing this package registers every job name with the outbox (``comptoir.platform.outbox``)
and every periodic entry with the scheduler (``comptoir.jobs.schedules``). A domain's jobs live
in ``comptoir/jobs/<domain>.py`` and are imported here.
"""

from comptoir.jobs import billing as billing
from comptoir.jobs import mail as mail
from comptoir.jobs import schedules as schedules

__all__ = ["billing", "mail", "schedules"]

"""E-mail jobs."""

from __future__ import annotations

from comptoir.platform import mail as platform_mail
from comptoir.platform.outbox import Queue, register_job


@register_job("mail.send", tenant=False, queue=Queue.HIGH)
def send_mail(*, mail_id: int) -> None:
    platform_mail.deliver(mail_id)

"""E-mail jobs."""

from __future__ import annotations

from comptoir.platform import mail as platform_mail
from comptoir.platform.outbox import Queue, register_job


@register_job(platform_mail.MAIL_JOB, tenant=False, queue=Queue.HIGH)
def send_mail(*, mail_id: int) -> None:
    # Platform job: some mail has no organization (operator password resets), and the message
    # row already carries everything the e-mail needs.
    platform_mail.deliver(mail_id)

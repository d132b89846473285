"""Messages rendered from templates (``templates/<name>.txt`` and ``.html``, Jinja2).

The HTML templates are autoescaped; the plain-text ones are not (they are not HTML). A
message's ``Message-ID`` comes from its outbox row, so a resend after a crash carries the
same id and a receiving system can tell it is one message.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

SUBJECTS = {
    "password_reset": "Reset your password",
    "verify_email": "Confirm your email address",
    "email_change_notice": "Your account's email address is being changed",
}


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("auth_service.mail", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def sender_domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "localhost"


def render(
    template: str, context: dict[str, Any], *, sender: str, recipient: str, message_id: str
) -> EmailMessage:
    """The message ``template`` makes of ``context``, plain text with an HTML alternative."""
    env = environment()
    message = EmailMessage()
    message["Subject"] = SUBJECTS[template]
    message["From"] = sender
    message["To"] = Address(addr_spec=recipient)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = f"<{message_id}@{sender_domain(sender)}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(env.get_template(f"{template}.txt").render(context))
    message.add_alternative(env.get_template(f"{template}.html").render(context), subtype="html")
    return message

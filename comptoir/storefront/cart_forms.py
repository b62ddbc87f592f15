"""HTML forms of the cart pages. They parse input; the cart services decide what is allowed."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField
from wtforms.fields import DateTimeLocalField
from wtforms.validators import InputRequired, Length, NumberRange, Optional
from wtforms.widgets import HiddenInput

from comptoir.storefront.carts import MAX_QUANTITY, MAX_REASON_LENGTH
from comptoir.storefront.forms import MoneyField

_QUANTITY_RANGE = NumberRange(
    min=1, max=MAX_QUANTITY, message=_l("Enter a quantity from 1 to %(max)s.")
)


class AddToCartForm(FlaskForm):
    article_id = IntegerField(widget=HiddenInput(), validators=[InputRequired()])
    # The article page's radio buttons carry this name.
    variant_id = IntegerField(_l("Option"), validators=[Optional()])
    quantity = IntegerField(
        _l("Quantity"),
        default=1,
        validators=[InputRequired(_l("Enter a quantity.")), _QUANTITY_RANGE],
    )


class LineQuantityForm(FlaskForm):
    quantity = IntegerField(
        _l("Quantity"), validators=[InputRequired(_l("Enter a quantity.")), _QUANTITY_RANGE]
    )


class LinePriceForm(FlaskForm):
    unit_price = MoneyField(
        _l("New unit price, before tax"), validators=[InputRequired(_l("Enter a price."))]
    )
    reason = StringField(
        _l("Reason"),
        validators=[InputRequired(_l("Say why the price changes.")), Length(max=MAX_REASON_LENGTH)],
    )


class ExpiryForm(FlaskForm):
    expires_at = DateTimeLocalField(
        _l("Cart expires at"),
        format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
        validators=[InputRequired(_l("Enter a date and time."))],
    )
